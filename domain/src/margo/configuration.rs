//! Margo application configuration (`configuration` of an ApplicationDescription): the settings
//! an operator may give, each naming a parameter and a schema whose data type and rules its value
//! must satisfy. An application's configuration is checked when it is added; a deployment's
//! parameters are checked against it when the deployment is made or updated, and an immutable
//! setting keeps the value it was installed with.

use crate::Problems;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The configuration of an application, as far as validating values needs it (display names
/// and sections only group settings; extension fields are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    #[serde(default)]
    pub sections: Vec<Section>,
    #[serde(default)]
    pub schema: Vec<Schema>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Section {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub settings: Vec<Setting>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Setting {
    /// The parameter (a key of the description's `parameters`) the setting sets.
    pub parameter: String,
    #[serde(default)]
    pub name: String,
    /// Set at install, never changed by an update.
    #[serde(default)]
    pub immutable: bool,
    /// The name of the schema its value must satisfy.
    pub schema: String,
}

/// A named data type with its rules (Margo's Text, Boolean, Integer, Double and Select rules).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schema {
    pub name: String,
    /// `string`, `integer`, `double`, `boolean`, or `array[<one of those>]`.
    pub data_type: String,
    pub allow_empty: Option<bool>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub regex_match: Option<String>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub min_precision: Option<u32>,
    pub max_precision: Option<u32>,
    pub multiselect: Option<bool>,
    pub options: Option<Vec<Value>>,
}

const SCALARS: [&str; 4] = ["string", "integer", "double", "boolean"];

impl Configuration {
    /// Reads a description's `configuration`; `None` when it has none, problems (at
    /// `configuration…`) when it is malformed.
    pub fn parse(tree: Option<&Value>) -> Result<Option<Self>, Problems> {
        let Some(tree) = tree else {
            return Ok(None);
        };
        serde_json::from_value(tree.clone()).map(Some).map_err(|e| {
            let mut p = Problems::default();
            p.push("configuration", e.to_string());
            p
        })
    }

    fn settings(&self) -> impl Iterator<Item = &Setting> {
        self.sections.iter().flat_map(|s| s.settings.iter())
    }

    fn schema_of(&self, setting: &Setting) -> Option<&Schema> {
        self.schema.iter().find(|s| s.name == setting.schema)
    }

    /// Whether the configuration holds together: each setting names a declared parameter and
    /// a schema that exists, each schema a known data type and a regular expression that
    /// compiles.
    pub fn check(&self, parameters: &[&str]) -> Problems {
        let mut problems = Problems::default();
        for (i, section) in self.sections.iter().enumerate() {
            for (j, setting) in section.settings.iter().enumerate() {
                let at = format!("configuration.sections[{i}].settings[{j}]");
                if !parameters.contains(&setting.parameter.as_str()) {
                    problems.push(
                        format!("{at}.parameter"),
                        format!("{:?} is not a declared parameter", setting.parameter),
                    );
                }
                if self.schema_of(setting).is_none() {
                    problems.push(
                        format!("{at}.schema"),
                        format!(
                            "{:?} names no schema of configuration.schema",
                            setting.schema
                        ),
                    );
                }
            }
        }
        for (i, schema) in self.schema.iter().enumerate() {
            let at = format!("configuration.schema[{i}]");
            if element_type(&schema.data_type).is_none() {
                problems.push(
                    format!("{at}.dataType"),
                    format!(
                        "{:?} is none of string, integer, double, boolean, array[…]",
                        schema.data_type
                    ),
                );
            }
            if let Some(re) = &schema.regex_match
                && let Err(e) = regex::Regex::new(re)
            {
                problems.push(
                    format!("{at}.regexMatch"),
                    format!("not a regular expression: {e}"),
                );
            }
        }
        problems
    }

    /// The problems of `values` (a deployment's parameters) against the settings' schemas, at
    /// `parameters.<name>`. With `installed` (the values of the deployment being updated), a
    /// value of an immutable setting that differs from what was installed is a problem too.
    pub fn check_values(
        &self,
        values: &BTreeMap<String, Value>,
        installed: Option<&BTreeMap<String, Value>>,
    ) -> Problems {
        let mut problems = Problems::default();
        for setting in self.settings() {
            let at = format!("parameters.{}", setting.parameter);
            let value = values.get(&setting.parameter);
            if let (true, Some(before)) = (setting.immutable, installed)
                && before.get(&setting.parameter) != value
            {
                problems.push(
                    &at,
                    format!(
                        "{} is immutable: it keeps the value it was installed with",
                        setting.parameter
                    ),
                );
                continue;
            }
            let (Some(value), Some(schema)) = (value, self.schema_of(setting)) else {
                continue;
            };
            if let Err(why) = schema.check(value) {
                problems.push(&at, format!("{why} (schema {})", schema.name));
            }
        }
        problems
    }
}

/// The element type of a data type: itself for a scalar, the inner type of `array[…]`; `None`
/// for an unknown type.
fn element_type(data_type: &str) -> Option<(&str, bool)> {
    let t = data_type.trim();
    if SCALARS.contains(&t) {
        return Some((t, false));
    }
    let inner = t.strip_prefix("array[")?.strip_suffix(']')?.trim();
    SCALARS.contains(&inner).then_some((inner, true))
}

impl Schema {
    /// Whether `value` satisfies the schema; why not, when it does not.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        let (element, array) = element_type(&self.data_type)
            .ok_or_else(|| format!("unknown data type {:?}", self.data_type))?;
        let allow_empty = self.allow_empty.unwrap_or(true);
        if let Some(options) = &self.options {
            return self.check_select(value, options, allow_empty);
        }
        if array {
            let items = value
                .as_array()
                .ok_or_else(|| format!("must be an array of {element}"))?;
            if items.is_empty() && !allow_empty {
                return Err("must not be empty".into());
            }
            return items.iter().enumerate().try_for_each(|(i, v)| {
                self.check_scalar(element, v, allow_empty)
                    .map_err(|e| format!("item {i}: {e}"))
            });
        }
        self.check_scalar(element, value, allow_empty)
    }

    fn check_select(
        &self,
        value: &Value,
        options: &[Value],
        allow_empty: bool,
    ) -> Result<(), String> {
        let chosen: Vec<&Value> = match (value, self.multiselect.unwrap_or(false)) {
            (Value::Array(items), true) => items.iter().collect(),
            (Value::Array(_), false) => return Err("takes one option, not a list".into()),
            (v, _) => vec![v],
        };
        if chosen.is_empty() && !allow_empty {
            return Err("must choose at least one option".into());
        }
        match chosen.iter().find(|v| !options.contains(v)) {
            Some(v) => Err(format!(
                "{v} is not one of the options {}",
                Value::Array(options.to_vec())
            )),
            None => Ok(()),
        }
    }

    fn check_scalar(&self, element: &str, value: &Value, allow_empty: bool) -> Result<(), String> {
        match element {
            "string" => {
                let s = value.as_str().ok_or("must be a string")?;
                if s.is_empty() && !allow_empty {
                    return Err("must not be empty".into());
                }
                let n = s.chars().count() as u64;
                if let Some(min) = self.min_length
                    && n < min
                {
                    return Err(format!("has {n} characters, fewer than {min}"));
                }
                if let Some(max) = self.max_length
                    && n > max
                {
                    return Err(format!("has {n} characters, more than {max}"));
                }
                if let Some(re) = &self.regex_match {
                    let re = regex::Regex::new(re)
                        .map_err(|e| format!("the schema's regexMatch: {e}"))?;
                    if !re.is_match(s) {
                        return Err(format!("{s:?} does not match {}", re.as_str()));
                    }
                }
                Ok(())
            }
            "boolean" => value
                .as_bool()
                .map(|_| ())
                .ok_or_else(|| "must be true or false".into()),
            "integer" => {
                let n = value
                    .as_i64()
                    .map(|n| n as f64)
                    .or_else(|| value.as_u64().map(|n| n as f64))
                    .ok_or("must be an integer")?;
                self.check_range(n)
            }
            "double" => {
                let n = value.as_f64().ok_or("must be a number")?;
                self.check_range(n)?;
                let digits = value.to_string().split_once('.').map_or(0, |(_, frac)| {
                    frac.trim_end_matches(|c: char| !c.is_ascii_digit()).len() as u32
                });
                if let Some(min) = self.min_precision
                    && digits < min
                {
                    return Err(format!("has {digits} decimal places, fewer than {min}"));
                }
                if let Some(max) = self.max_precision
                    && digits > max
                {
                    return Err(format!("has {digits} decimal places, more than {max}"));
                }
                Ok(())
            }
            other => Err(format!("unknown data type {other:?}")),
        }
    }

    fn check_range(&self, n: f64) -> Result<(), String> {
        if let Some(min) = self.min_value
            && n < min
        {
            return Err(format!("{n} is less than {min}"));
        }
        if let Some(max) = self.max_value
            && n > max
        {
            return Err(format!("{n} is more than {max}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Configuration {
        Configuration::parse(Some(&json!({
            "sections": [{"name": "General", "settings": [
                {"parameter": "greeting", "name": "Greeting", "schema": "text"},
                {"parameter": "port", "name": "Port", "schema": "port", "immutable": true},
                {"parameter": "ratio", "name": "Ratio", "schema": "ratio"},
                {"parameter": "mode", "name": "Mode", "schema": "mode"},
                {"parameter": "tags", "name": "Tags", "schema": "tags"},
                {"parameter": "debug", "name": "Debug", "schema": "flag"}
            ]}],
            "schema": [
                {"name": "text", "dataType": "string", "maxLength": 5, "allowEmpty": false, "regexMatch": "^[A-Z]"},
                {"name": "port", "dataType": "integer", "minValue": 1, "maxValue": 65535},
                {"name": "ratio", "dataType": "double", "minValue": 0, "maxValue": 1, "maxPrecision": 2},
                {"name": "mode", "dataType": "string", "options": ["fast", "safe"]},
                {"name": "tags", "dataType": "array[string]", "allowEmpty": false},
                {"name": "flag", "dataType": "boolean"}
            ]
        })))
        .unwrap()
        .unwrap()
    }

    fn values(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    fn paths(p: &Problems) -> Vec<&str> {
        p.iter().map(|p| p.path.as_str()).collect()
    }

    #[test]
    fn values_within_their_schemas_pass() {
        let ok = values(json!({
            "greeting": "Hi", "port": 8080, "ratio": 0.25, "mode": "safe",
            "tags": ["a"], "debug": true
        }));
        assert!(config().check_values(&ok, None).is_empty());
        assert!(
            config().check_values(&BTreeMap::new(), None).is_empty(),
            "defaults stand"
        );
    }

    #[test]
    fn each_rule_refuses_what_breaks_it_naming_the_parameter() {
        let cases = [
            (json!({"greeting": ""}), "empty"),
            (json!({"greeting": "Hello!"}), "more than 5"),
            (json!({"greeting": "hey"}), "does not match"),
            (json!({"greeting": 7}), "must be a string"),
            (json!({"port": 0}), "less than 1"),
            (json!({"port": 1.5}), "integer"),
            (json!({"ratio": 0.125}), "decimal places"),
            (json!({"ratio": 2.0}), "more than 1"),
            (json!({"mode": "turbo"}), "not one of the options"),
            (json!({"mode": ["fast"]}), "one option"),
            (json!({"tags": []}), "empty"),
            (json!({"tags": ["a", 1]}), "item 1"),
            (json!({"debug": "yes"}), "true or false"),
        ];
        for (given, why) in cases {
            let name = given.as_object().unwrap().keys().next().unwrap().clone();
            let problems = config().check_values(&values(given.clone()), None);
            assert_eq!(paths(&problems), [format!("parameters.{name}")], "{given}");
            assert!(problems.to_string().contains(why), "{given}: {problems}");
        }
    }

    #[test]
    fn an_immutable_setting_keeps_its_installed_value() {
        let installed = values(json!({"port": 8080}));
        let same = config().check_values(&values(json!({"port": 8080})), Some(&installed));
        assert!(same.is_empty());
        let changed = config().check_values(&values(json!({"port": 9090})), Some(&installed));
        assert_eq!(paths(&changed), ["parameters.port"]);
        assert!(changed.to_string().contains("immutable"));
        let others = config().check_values(
            &values(json!({"port": 8080, "greeting": "Yo"})),
            Some(&installed),
        );
        assert!(others.is_empty(), "mutable settings change freely");
    }

    #[test]
    fn a_configuration_that_does_not_hold_together_is_refused() {
        let broken = Configuration::parse(Some(&json!({
            "sections": [{"name": "S", "settings": [
                {"parameter": "undeclared", "name": "U", "schema": "missing"}
            ]}],
            "schema": [{"name": "s", "dataType": "text", "regexMatch": "("}]
        })))
        .unwrap()
        .unwrap();
        let problems = broken.check(&["greeting"]);
        assert_eq!(
            paths(&problems),
            [
                "configuration.sections[0].settings[0].parameter",
                "configuration.sections[0].settings[0].schema",
                "configuration.schema[0].dataType",
                "configuration.schema[0].regexMatch"
            ]
        );
        assert!(
            config()
                .check(&["greeting", "port", "ratio", "mode", "tags", "debug"])
                .is_empty()
        );
    }
}
