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

/// Which devices a device list holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    pub site: Option<SiteId>,
    pub online: Option<bool>,
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
