//! `compose.yaml` as EOS reads it: the keys it runs (anything else is refused by name),
//! `${NAME}` interpolation from Margo parameters, the start order from `depends_on`, the
//! networks each service joins, and compose's way of writing durations and memory.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `compose.yaml`, the part EOS runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    pub services: BTreeMap<String, Service>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<serde_yaml::Value>>,
    /// Networks of the component besides `default`; services on none of them join `default`.
    #[serde(default)]
    pub networks: BTreeMap<String, Option<serde_yaml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub image: String,
    #[serde(default)]
    pub command: Option<Command>,
    #[serde(default)]
    pub entrypoint: Option<Command>,
    #[serde(default)]
    pub environment: Option<Environment>,
    #[serde(default)]
    pub env_file: Option<OneOrMany>,
    #[serde(default)]
    pub ports: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Host devices (`/dev/HOST[:/dev/CONTAINER]`), only those the workload policy grants.
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub depends_on: Option<DependsOn>,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// Accepted; the EN's supervisor restarts every component alike.
    #[serde(default)]
    pub restart: Option<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub networks: Option<serde_yaml::Value>,
    #[serde(default)]
    pub deploy: Option<Deploy>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

impl Command {
    pub(crate) fn words(&self) -> Vec<String> {
        match self {
            Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            Command::Exec(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Environment {
    Map(BTreeMap<String, Option<serde_yaml::Value>>),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DependsOn {
    List(Vec<String>),
    Map(BTreeMap<String, Dependency>),
}

#[derive(Debug, Deserialize)]
pub struct Dependency {
    #[serde(default)]
    pub condition: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Healthcheck {
    pub test: Command,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub retries: Option<i64>,
    #[serde(default)]
    pub start_period: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Deploy {
    #[serde(default)]
    pub resources: Option<Resources>,
}

#[derive(Debug, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub limits: Option<Limits>,
}

#[derive(Debug, Deserialize)]
pub struct Limits {
    #[serde(default)]
    pub cpus: Option<serde_yaml::Value>,
    #[serde(default)]
    pub memory: Option<String>,
}

/// Replaces `${NAME}` and `${NAME:-default}` with values from `vars` (unknown names without a
/// default become empty, as compose does); `$$` is a literal `$`.
pub fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {:?}", &rest[at..]))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let value = vars
                .get(name)
                .filter(|v| !v.is_empty() || default.is_none())
                .map(String::as_str)
                .or(default)
                .unwrap_or("");
            out.push_str(value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Fills the parameters into every string of a parsed compose file (values only, never keys):
/// a parameter's value stays inside the scalar it was written in, so a value with a newline
/// cannot add keys. A scalar that is one `${…}` alone and comes out a number becomes one.
fn substitute(
    value: &mut serde_yaml::Value,
    vars: &BTreeMap<String, String>,
) -> Result<(), String> {
    use serde_yaml::Value;
    match value {
        Value::String(s) if s.contains('$') => {
            let alone = s.starts_with("${") && s.ends_with('}') && s.matches('$').count() == 1;
            let filled = interpolate(s, vars)?;
            *value = match serde_yaml::from_str::<Value>(&filled) {
                Ok(n @ Value::Number(_)) if alone => n,
                _ => Value::String(filled),
            };
        }
        Value::Sequence(items) => {
            for item in items {
                substitute(item, vars)?;
            }
        }
        Value::Mapping(map) => {
            for (_, item) in map.iter_mut() {
                substitute(item, vars)?;
            }
        }
        Value::Tagged(tagged) => substitute(&mut tagged.value, vars)?,
        _ => {}
    }
    Ok(())
}

/// Reads `compose.yaml` text with the parameters in; every problem names its service or key.
/// The text is parsed first and the parameters filled into its strings after (see
/// [`substitute`]).
pub fn parse(text: &str, vars: &BTreeMap<String, String>) -> Result<ComposeFile, String> {
    let mut value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("compose.yaml: {e}"))?;
    substitute(&mut value, vars)?;
    let file: ComposeFile =
        serde_yaml::from_value(value).map_err(|e| format!("compose.yaml: {e}"))?;
    if file.services.is_empty() {
        return Err("compose.yaml: no services".into());
    }
    start_order(&file)?;
    for name in file.services.keys() {
        service_networks(&file, name)?;
    }
    Ok(file)
}

/// The networks a service joins: those it lists, or `default`.
pub fn service_networks(file: &ComposeFile, name: &str) -> Result<Vec<String>, String> {
    let listed: Vec<String> = match &file.services[name].networks {
        None => vec!["default".into()],
        Some(serde_yaml::Value::Sequence(s)) => s
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("service {name}: networks are names"))?,
        Some(serde_yaml::Value::Mapping(m)) => m
            .keys()
            .map(|k| k.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("service {name}: networks are names"))?,
        Some(other) => return Err(format!("service {name}: networks {other:?} is not a list")),
    };
    for n in &listed {
        if n != "default" && !file.networks.contains_key(n) {
            return Err(format!(
                "service {name} joins network {n}, which compose.yaml does not declare"
            ));
        }
    }
    Ok(listed)
}

/// Services in an order where each comes after what it depends on.
pub fn start_order(file: &ComposeFile) -> Result<Vec<String>, String> {
    let deps = |s: &Service| -> Vec<String> {
        match &s.depends_on {
            None => Vec::new(),
            Some(DependsOn::List(l)) => l.clone(),
            Some(DependsOn::Map(m)) => m.keys().cloned().collect(),
        }
    };
    for (name, s) in &file.services {
        for d in deps(s) {
            if !file.services.contains_key(&d) {
                return Err(format!(
                    "service {name} depends on {d}, which is not a service"
                ));
            }
        }
    }
    let mut order: Vec<String> = Vec::new();
    while order.len() < file.services.len() {
        let next = file
            .services
            .iter()
            .find(|(name, s)| !order.contains(name) && deps(s).iter().all(|d| order.contains(d)));
        match next {
            Some((name, _)) => order.push(name.clone()),
            None => {
                let stuck: Vec<&String> = file
                    .services
                    .keys()
                    .filter(|n| !order.contains(n))
                    .collect();
                return Err(format!(
                    "services depend on each other in a cycle: {stuck:?}"
                ));
            }
        }
    }
    Ok(order)
}

/// `1m30s`, `10s`, `500ms` in nanoseconds.
pub(crate) fn duration_ns(text: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            "ms".to_owned()
        } else {
            c.to_string()
        };
        let n: f64 = number.parse().ok()?;
        number.clear();
        total += n * match unit.as_str() {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            _ => return None,
        };
    }
    if !number.is_empty() {
        total += number.parse::<f64>().ok()? * 1e9;
    }
    Some(total as i64)
}

/// Compose memory: `512m`, `1g`, `128M`, bytes.
pub(crate) fn compose_memory(text: &str) -> Option<i64> {
    let lower = text.to_ascii_lowercase();
    let (digits, factor) = match lower.trim_end_matches('b').chars().last()? {
        'k' => (&lower[..lower.trim_end_matches('b').len() - 1], 1i64 << 10),
        'm' => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 20),
        'g' => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (lower.as_str(), 1),
    };
    digits
        .parse::<f64>()
        .ok()
        .map(|n| (n * factor as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_fill_the_compose_file() {
        let vars = BTreeMap::from([("PORT".to_owned(), "8080".to_owned())]);
        assert_eq!(
            interpolate("${PORT}:80 ${MISSING:-x} ${EMPTY} $$HOME", &vars).unwrap(),
            "8080:80 x  $HOME"
        );
        assert!(interpolate("${OPEN", &vars).is_err());
    }

    /// A parameter's value stays inside the string it fills: a newline in it adds no key.
    #[test]
    fn a_parameter_cannot_add_keys() {
        let text = "services:\n  web:\n    image: w\n    environment:\n      GREETING: ${GREETING}\n    ports: [\"${PORT}:80\"]\n    deploy:\n      resources:\n        limits:\n          cpus: ${CPUS}\n";
        let vars = BTreeMap::from([
            (
                "GREETING".to_owned(),
                "hi\n    privileged: true\n    volumes: [\"/:/host\"]".to_owned(),
            ),
            ("PORT".to_owned(), "8080".to_owned()),
            ("CPUS".to_owned(), "0.5".to_owned()),
        ]);
        let file = parse(text, &vars).unwrap();
        let web = &file.services["web"];
        assert!(web.volumes.is_empty());
        match &web.environment {
            Some(Environment::Map(m)) => assert_eq!(
                m["GREETING"],
                Some(serde_yaml::Value::String(vars["GREETING"].clone()))
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(web.ports, [serde_yaml::Value::String("8080:80".into())]);
        let limits = web.deploy.as_ref().and_then(|d| d.resources.as_ref());
        let cpus = limits
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.cpus.clone());
        assert_eq!(
            cpus,
            Some(serde_yaml::from_str("0.5").unwrap()),
            "a number stays one"
        );
        // Pasted into the text, the same value would have made the service privileged.
        let pasted = interpolate(text, &vars).unwrap();
        let unknown = serde_yaml::from_str::<ComposeFile>(&pasted).unwrap_err();
        assert!(unknown.to_string().contains("privileged"), "{unknown}");
    }

    #[test]
    fn services_start_after_what_they_depend_on_and_cycles_are_refused() {
        let file = parse(
            "services:\n  web: {image: w, depends_on: [db]}\n  db: {image: d}\n  probe: {image: p, depends_on: {web: {condition: service_started}}}\n",
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(start_order(&file).unwrap(), ["db", "web", "probe"]);
        let cycle = parse(
            "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(cycle.contains("cycle"), "{cycle}");
        let unknown = parse(
            "services:\n  a: {image: x, privileged: true}\n",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(unknown.contains("privileged"), "{unknown}");
    }

    #[test]
    fn services_join_the_networks_they_list_and_only_declared_ones() {
        let file = parse(
            "services:\n  web: {image: w, networks: [back]}\n  api: {image: a, networks: {back: {}, front: {}}}\n  probe: {image: p}\nnetworks:\n  back: {}\n  front: {}\n",
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(service_networks(&file, "web").unwrap(), ["back"]);
        assert_eq!(service_networks(&file, "api").unwrap(), ["back", "front"]);
        assert_eq!(service_networks(&file, "probe").unwrap(), ["default"]);
        let undeclared = parse(
            "services:\n  web: {image: w, networks: [nowhere]}\n",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(undeclared.contains("network nowhere"), "{undeclared}");
    }

    #[test]
    fn durations_and_memory_read_as_compose_writes_them() {
        assert_eq!(duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(duration_ns("500ms"), Some(500_000_000));
        assert_eq!(duration_ns("10"), Some(10_000_000_000));
        assert_eq!(compose_memory("512m"), Some(512 << 20));
        assert_eq!(compose_memory("1g"), Some(1 << 30));
        assert_eq!(compose_memory("2048"), Some(2048));
    }
}
