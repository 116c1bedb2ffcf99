//! Margo `deviceConstraints`: capacity requirements and eligibility rules, and their evaluation
//! against a device's capabilities (`margo/SPEC-NOTES.md` §1.5).

use super::walk::{Walk, index, join};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceConstraints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_requirements: Option<CapacityRequirements>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eligibility_rules: Vec<EligibilityRule>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityRequirements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuRequirement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuRequirement {
    pub cores: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
}

/// One rule; the rules of a constraint are ORed, the two selectors of a rule are ANDed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EligibilityRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property_selector: Option<Selector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<Selector>,
}

/// Expressions that must all hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    pub match_expressions: Vec<MatchExpression>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchExpression {
    pub key: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_selector: Option<Selector>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
    ContainsAll,
    /// The spec's enum table spells it "ContainersAny"; both spellings are read.
    #[serde(alias = "ContainersAny")]
    ContainsAny,
}

impl Operator {
    fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }
}

/// Checks a `deviceConstraints` tree at `path`, recording every problem.
pub(crate) fn walk_constraints(w: &mut Walk<'_>, v: &Value, path: &str) {
    let Some(m) = w.object(v, path) else { return };
    w.no_unknown_fields(m, &["capacityRequirements", "eligibilityRules"], path);
    if let Some(cap) = m.get("capacityRequirements") {
        walk_capacity(w, cap, &join(path, "capacityRequirements"));
    }
    if let Some(rules) = m.get("eligibilityRules") {
        let rules_path = join(path, "eligibilityRules");
        for (i, rule) in w.list(rules, &rules_path).into_iter().flatten().enumerate() {
            let rp = index(&rules_path, i);
            let Some(rm) = w.object(rule, &rp) else {
                continue;
            };
            w.no_unknown_fields(rm, &["propertySelector", "labelSelector"], &rp);
            if rm.get("propertySelector").is_none() && rm.get("labelSelector").is_none() {
                w.problem(
                    &rp,
                    "a rule needs a propertySelector, a labelSelector or both",
                );
            }
            for key in ["propertySelector", "labelSelector"] {
                if let Some(sel) = rm.get(key) {
                    walk_selector(w, sel, &join(&rp, key), key == "propertySelector");
                }
            }
        }
    }
}

pub(crate) fn walk_capacity(w: &mut Walk<'_>, v: &Value, path: &str) {
    let Some(m) = w.object(v, path) else { return };
    w.no_unknown_fields(
        m,
        &["cpu", "memory", "storage", "peripherals", "interfaces"],
        path,
    );
    if let Some(cpu) = m.get("cpu") {
        let cp = join(path, "cpu");
        if let Some(cm) = w.object(cpu, &cp) {
            w.no_unknown_fields(cm, &["cores", "architectures"], &cp);
            match w.required(cm, "cores", &cp) {
                Some(Value::Number(n)) if n.as_f64().is_some_and(|c| c > 0.0) => {}
                Some(_) => w.problem(join(&cp, "cores"), "must be a positive number"),
                None => {}
            }
        }
    }
    for key in ["memory", "storage"] {
        if let Some(text) = w.optional_str(m, key, path)
            && super::quantity::parse_bytes(&text).is_none()
        {
            w.problem(
                join(path, key),
                format!("{text:?} is not a binary quantity such as 512Mi or 10Gi"),
            );
        }
    }
}

fn walk_selector(w: &mut Walk<'_>, v: &Value, path: &str, property: bool) {
    let Some(m) = w.object(v, path) else { return };
    w.no_unknown_fields(m, &["matchExpressions"], path);
    let Some(exprs) = w.required(m, "matchExpressions", path) else {
        return;
    };
    let ep = join(path, "matchExpressions");
    for (i, e) in w.list(exprs, &ep).into_iter().flatten().enumerate() {
        walk_expression(w, e, &index(&ep, i), property);
    }
}

fn walk_expression(w: &mut Walk<'_>, v: &Value, path: &str, property: bool) {
    let Some(m) = w.object(v, path) else { return };
    w.no_unknown_fields(m, &["key", "operator", "values", "itemSelector"], path);
    let key = w.required_str(m, "key", path);
    if property && key.as_deref().is_some_and(|k| !k.starts_with('/')) {
        w.problem(
            join(path, "key"),
            "a property key is a JSON Pointer and starts with '/'",
        );
    }
    let Some(op_text) = w.required_str(m, "operator", path) else {
        return;
    };
    let Some(op) = Operator::parse(&op_text) else {
        w.problem(join(path, "operator"), format!("unknown operator {op_text:?} (expected In, NotIn, Exists, DoesNotExist, Gt, Lt, ContainsAll or ContainsAny)"));
        return;
    };
    let values = m.get("values").and_then(Value::as_array);
    let vp = join(path, "values");
    match op {
        Operator::In | Operator::NotIn if values.is_none_or(|v| v.is_empty()) => {
            w.problem(vp, format!("{op_text} needs at least one value"))
        }
        Operator::Exists | Operator::DoesNotExist if values.is_some_and(|v| !v.is_empty()) => {
            w.problem(vp, format!("{op_text} takes no values"))
        }
        Operator::Gt | Operator::Lt if values.is_none_or(|v| v.len() != 1 || !v[0].is_number()) => {
            w.problem(vp, format!("{op_text} needs exactly one number"))
        }
        Operator::ContainsAll | Operator::ContainsAny if m.get("itemSelector").is_none() => w
            .problem(
                join(path, "itemSelector"),
                format!("{op_text} needs an itemSelector"),
            ),
        _ => {}
    }
    if let Some(item) = m.get("itemSelector") {
        walk_selector(w, item, &join(path, "itemSelector"), true);
    }
}

impl Selector {
    /// Whether every expression holds; `lookup` resolves a key to its value, if any.
    pub fn matches(&self, lookup: &dyn Fn(&str) -> Option<Value>) -> bool {
        self.match_expressions.iter().all(|e| e.matches(lookup))
    }
}

impl MatchExpression {
    pub fn matches(&self, lookup: &dyn Fn(&str) -> Option<Value>) -> bool {
        let found = lookup(&self.key);
        match self.operator {
            Operator::Exists => found.is_some(),
            Operator::DoesNotExist => found.is_none(),
            Operator::In => {
                found.is_some_and(|v| scalars(&v).iter().any(|s| self.values.contains(s)))
            }
            Operator::NotIn => {
                found.is_none_or(|v| !scalars(&v).iter().any(|s| self.values.contains(s)))
            }
            Operator::Gt => compare(found, &self.values, |a, b| a > b),
            Operator::Lt => compare(found, &self.values, |a, b| a < b),
            Operator::ContainsAll | Operator::ContainsAny => {
                let Some(Value::Array(items)) = found else {
                    return false;
                };
                let Some(sel) = &self.item_selector else {
                    return false;
                };
                items.iter().filter(|i| i.is_object()).any(|item| {
                    let item_lookup = |k: &str| item.pointer(k).cloned();
                    if self.operator == Operator::ContainsAll {
                        sel.match_expressions
                            .iter()
                            .all(|e| e.matches(&item_lookup))
                    } else {
                        sel.match_expressions
                            .iter()
                            .any(|e| e.matches(&item_lookup))
                    }
                })
            }
        }
    }
}

/// A scalar, or the scalars of an array of scalars (arrays of objects yield nothing).
fn scalars(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter(|i| !i.is_object() && !i.is_array())
            .cloned()
            .collect(),
        Value::Object(_) => Vec::new(),
        scalar => vec![scalar.clone()],
    }
}

fn compare(found: Option<Value>, values: &[Value], op: fn(f64, f64) -> bool) -> bool {
    match (
        found.as_ref().and_then(Value::as_f64),
        values.first().and_then(Value::as_f64),
    ) {
        (Some(a), Some(b)) => op(a, b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expr(v: Value) -> MatchExpression {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn nvidia_gpu_example_from_the_spec_matches_only_devices_with_one() {
        let e = expr(
            json!({"key": "/peripherals", "operator": "ContainsAll", "itemSelector": {"matchExpressions": [
            {"key": "/type", "operator": "In", "values": ["gpu"]},
            {"key": "/manufacturer", "operator": "In", "values": ["NVIDIA"]}]}}),
        );
        let with = json!({"peripherals": [{"type": "display"}, {"type": "gpu", "manufacturer": "NVIDIA"}]});
        let without = json!({"peripherals": [{"type": "gpu", "manufacturer": "AMD"}]});
        assert!(e.matches(&|k| with.pointer(k).cloned()));
        assert!(!e.matches(&|k| without.pointer(k).cloned()));
    }

    #[test]
    fn scalar_operators_follow_the_spec() {
        let doc = json!({"cores": 8, "vendor": "Acme", "tags": ["a", "b"]});
        let look = |k: &str| doc.pointer(k).cloned();
        assert!(expr(json!({"key": "/cores", "operator": "Gt", "values": [4]})).matches(&look));
        assert!(!expr(json!({"key": "/cores", "operator": "Lt", "values": [4]})).matches(&look));
        assert!(
            expr(json!({"key": "/vendor", "operator": "NotIn", "values": ["acme"]})).matches(&look)
        );
        assert!(expr(json!({"key": "/tags", "operator": "In", "values": ["b"]})).matches(&look));
        assert!(expr(json!({"key": "/missing", "operator": "DoesNotExist"})).matches(&look));
        assert!(expr(json!({"key": "/x", "operator": "ContainersAny", "itemSelector": {"matchExpressions": []}})).operator == Operator::ContainsAny);
    }
}
