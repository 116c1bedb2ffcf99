//! Cursor pagination of lists: a page is at most `limit` items after the item a cursor names,
//! in a stable order (keyset pagination, so a page costs the same wherever it is, and items
//! added meanwhile neither repeat nor vanish). Cursors are opaque to clients.

use super::ServiceError;
use crate::ids::SiteId;
use crate::problem::Problems;

/// The most items one page holds; also the default.
pub const MAX_PAGE: u64 = 1000;

/// Which page of a list: the items after `after` (a key of the list's order), at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: u64,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            after: None,
            limit: MAX_PAGE,
        }
    }
}

const CURSOR_VERSION: &str = "1:";

impl PageRequest {
    /// The page a client asked for: `cursor` as a previous page gave it, `limit` from 1 to
    /// [`MAX_PAGE`] (default [`MAX_PAGE`]).
    pub fn parse(cursor: Option<&str>, limit: Option<u64>) -> Result<Self, ServiceError> {
        let limit = limit.unwrap_or(MAX_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(invalid("limit", format!("must be 1 to {MAX_PAGE}")));
        }
        let after = match cursor {
            None | Some("") => None,
            Some(c) => Some(
                hex::decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|t| t.strip_prefix(CURSOR_VERSION).map(str::to_owned))
                    .ok_or_else(|| invalid("cursor", "not a cursor this server gave".into()))?,
            ),
        };
        Ok(Self { after, limit })
    }

    /// What the store is asked for: one more than a page, to know whether another follows.
    pub fn fetch(&self) -> u64 {
        self.limit + 1
    }

    /// The page of `fetched` (what the store gave for [`fetch`](Self::fetch) items), with the
    /// cursor of the next page when there is one; `key` gives an item's key in the order.
    pub fn page<T>(&self, mut fetched: Vec<T>, key: impl Fn(&T) -> String) -> Page<T> {
        let more = fetched.len() as u64 > self.limit;
        fetched.truncate(self.limit as usize);
        let next = match (more, fetched.last()) {
            (true, Some(last)) => Some(hex::encode(format!("{CURSOR_VERSION}{}", key(last)))),
            _ => None,
        };
        Page {
            items: fetched,
            next,
        }
    }
}

/// One page of a list, and the cursor of the next one (`None` on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

/// Which applications an app list holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppFilter {
    /// Words that the id, name, description or tagline of the newest version contain (any
    /// case).
    pub q: Option<String>,
    /// A tag of the catalog (any case).
    pub tag: Option<String>,
}

/// Which devices a device list holds; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    pub site: Option<SiteId>,
    pub online: Option<bool>,
    /// Only devices of this schedule.
    pub schedule: Option<crate::placement::Schedule>,
    /// Only devices whose capabilities carry every one of these labels.
    pub labels: Vec<LabelRequirement>,
}

/// One condition of a label selector: the label `key` is there, with `value` when one is
/// given (an array label, such as `eos.dev/runtimes`, matches when any element is the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    pub key: String,
    pub value: Option<String>,
}

/// A label selector as `kubectl -l` writes it: `key=value` and `key` conditions joined by
/// commas, all of which must hold (`line=3,region=eu,gpu`).
pub fn parse_label_selector(selector: &str) -> Result<Vec<LabelRequirement>, String> {
    selector
        .split(',')
        .map(str::trim)
        .map(|part| {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (part, None),
            };
            let reserved_ok = key.strip_prefix("eos.dev/").map_or(key, |n| n);
            crate::ids::check_label_key(reserved_ok)?;
            if let Some(v) = value {
                crate::ids::check_label_value(v)?;
            }
            Ok(LabelRequirement {
                key: key.to_owned(),
                value: value.map(str::to_owned),
            })
        })
        .collect()
}

/// The labels of a device's capabilities as (key, value) pairs a selector matches: a string
/// is one value, each string, number or boolean of an array another.
pub fn label_pairs(
    labels: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Vec<(String, String)> {
    use serde_json::Value;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut pairs = Vec::new();
    for (key, value) in labels {
        match value {
            Value::Array(items) => {
                pairs.extend(items.iter().filter_map(scalar).map(|v| (key.clone(), v)))
            }
            other => pairs.extend(scalar(other).map(|v| (key.clone(), v))),
        }
    }
    pairs.sort();
    pairs.dedup();
    pairs
}

/// Which deployments a deployment list holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentFilter {
    pub site: Option<SiteId>,
    pub app_id: Option<String>,
    /// `active`, `removing` or `removed`.
    pub phase: Option<String>,
}

fn invalid(field: &str, message: String) -> ServiceError {
    let mut problems = Problems::default();
    problems.push(field, message);
    ServiceError::Invalid {
        what: "page request".into(),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_names_the_last_item_and_comes_back_as_its_key() {
        let request = PageRequest::parse(None, Some(2)).unwrap();
        let page = request.page(vec!["a", "b", "c"], |s| s.to_string());
        assert_eq!(page.items, ["a", "b"]);
        let next = PageRequest::parse(page.next.as_deref(), Some(2)).unwrap();
        assert_eq!(next.after.as_deref(), Some("b"));
        let last = next.page(vec!["c"], |s| s.to_string());
        assert_eq!((last.items, last.next), (vec!["c"], None));
    }

    #[test]
    fn limits_and_cursors_from_elsewhere_are_refused() {
        assert!(PageRequest::parse(None, Some(0)).is_err());
        assert!(PageRequest::parse(None, Some(MAX_PAGE + 1)).is_err());
        assert!(PageRequest::parse(Some("zz"), None).is_err());
        assert!(PageRequest::parse(Some(&hex::encode("2:x")), None).is_err());
        assert_eq!(
            PageRequest::parse(None, None).unwrap(),
            PageRequest::default()
        );
    }
}

#[cfg(test)]
mod selector_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_label_selector_is_read_like_kubectl_l() {
        let got = parse_label_selector("line=3, gpu ,eos.dev/runtimes=wasm").unwrap();
        let req = |k: &str, v: Option<&str>| LabelRequirement {
            key: k.into(),
            value: v.map(Into::into),
        };
        assert_eq!(
            got,
            [
                req("line", Some("3")),
                req("gpu", None),
                req("eos.dev/runtimes", Some("wasm"))
            ]
        );
        for bad in ["", "line=3,", "Bad Key=1", "line=not ok"] {
            assert!(parse_label_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn array_labels_match_by_each_element() {
        let labels = serde_json::from_value(json!({
            "eos.dev/runtimes": ["wasm", "oci"], "line": "3", "gpus": 2, "spare": true, "nested": {"a": 1}
        }))
        .unwrap();
        let pairs = label_pairs(&labels);
        let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            shown,
            [
                "eos.dev/runtimes=oci",
                "eos.dev/runtimes=wasm",
                "gpus=2",
                "line=3",
                "spare=true"
            ]
        );
    }
}
