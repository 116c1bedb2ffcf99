//! Values for a chart: a component's Margo parameters become overrides at their pointers
//! (`image.tag`, `service.port`), merged over the chart's `values.yaml` as `helm --set` would.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The overrides a component's parameters make: each `pointer` (dot-separated keys) set to its
/// value, read as a YAML scalar (`3` is a number, `true` a boolean, `"3"` a string).
pub fn overrides(parameters: &BTreeMap<String, String>) -> Result<Value, String> {
    let mut out = Value::Object(Map::new());
    for (pointer, text) in parameters {
        let keys: Vec<&str> = pointer.split('.').collect();
        if keys.iter().any(|k| k.is_empty()) {
            return Err(format!(
                "{pointer:?} is not a values path such as image.tag"
            ));
        }
        let value = match serde_yaml::from_str::<Value>(text) {
            Ok(v @ (Value::Bool(_) | Value::Number(_) | Value::String(_))) => v,
            _ => Value::String(text.clone()),
        };
        let mut at = &mut out;
        for key in &keys[..keys.len() - 1] {
            let map = at
                .as_object_mut()
                .ok_or_else(|| format!("{pointer:?} goes through a value that is no mapping"))?;
            at = map
                .entry((*key).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        at.as_object_mut()
            .ok_or_else(|| format!("{pointer:?} goes through a value that is no mapping"))?
            .insert(keys[keys.len() - 1].to_owned(), value);
    }
    Ok(out)
}

/// `over` merged into `base`: mappings key by key, anything else replaced.
pub fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(existing) => merge(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, other) => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_land_at_their_pointers_with_their_types() {
        let params = BTreeMap::from([
            ("image.tag".to_owned(), "1.2.3".to_owned()),
            ("replicaCount".to_owned(), "3".to_owned()),
            ("service.enabled".to_owned(), "true".to_owned()),
            ("greeting".to_owned(), "hello: world".to_owned()),
        ]);
        assert_eq!(
            overrides(&params).unwrap(),
            json!({"image": {"tag": "1.2.3"}, "replicaCount": 3,
                   "service": {"enabled": true}, "greeting": "hello: world"})
        );
        let bad = BTreeMap::from([("image..tag".to_owned(), "x".to_owned())]);
        assert!(overrides(&bad).unwrap_err().contains("image..tag"));
        let through = BTreeMap::from([
            ("image".to_owned(), "web".to_owned()),
            ("image.tag".to_owned(), "1".to_owned()),
        ]);
        assert!(overrides(&through).unwrap_err().contains("no mapping"));
    }

    #[test]
    fn overrides_merge_key_by_key() {
        let base = json!({"image": {"repository": "web", "tag": "1.0"}, "replicaCount": 1});
        let over = json!({"image": {"tag": "2.0"}, "extra": [1]});
        assert_eq!(
            merge(&base, &over),
            json!({"image": {"repository": "web", "tag": "2.0"}, "replicaCount": 1, "extra": [1]})
        );
    }
}
