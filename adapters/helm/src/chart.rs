//! A Helm chart as read from its folder or archive: `Chart.yaml`, `values.yaml`, and the files
//! under `templates/` (helpers are the `_*.tpl` ones; `NOTES.txt` is not rendered).

use serde::Deserialize;
use serde_json::Value;
use std::io::Read;
use std::path::{Component, Path};

/// Why a chart could not be read; names the file.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
}

fn invalid(file: impl Into<String>, reason: impl ToString) -> ChartError {
    ChartError::Invalid {
        file: file.into(),
        reason: reason.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub name: String,
    pub version: String,
    pub app_version: Option<String>,
    /// `values.yaml`, as JSON (an empty object when the chart has none).
    pub values: Value,
    /// Templates that produce manifests: (path under the chart, text), in path order.
    pub templates: Vec<(String, String)>,
    /// Files that only define named templates (`templates/_*.tpl`): (path, text).
    pub helpers: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChartYaml {
    api_version: Option<String>,
    name: String,
    version: String,
    app_version: Option<String>,
}

impl Chart {
    /// Reads a chart from its files, given as (path inside the chart folder, bytes).
    fn from_files(mut files: Vec<(String, Vec<u8>)>) -> Result<Self, ChartError> {
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let text = |path: &str, bytes: &[u8]| {
            String::from_utf8(bytes.to_vec()).map_err(|e| invalid(path, e))
        };
        let chart_yaml = files
            .iter()
            .find(|(p, _)| p == "Chart.yaml")
            .ok_or_else(|| invalid("Chart.yaml", "missing: not a Helm chart"))?;
        let meta: ChartYaml =
            serde_yaml::from_slice(&chart_yaml.1).map_err(|e| invalid("Chart.yaml", e))?;
        if meta.api_version.as_deref().is_some_and(|v| v != "v2") {
            return Err(invalid(
                "Chart.yaml",
                format!(
                    "apiVersion {} is not v2 (Helm 3 charts)",
                    meta.api_version.unwrap_or_default()
                ),
            ));
        }
        let values = match files.iter().find(|(p, _)| p == "values.yaml") {
            None => Value::Object(Default::default()),
            Some((p, bytes)) => match serde_yaml::from_slice::<Value>(bytes) {
                Ok(Value::Null) => Value::Object(Default::default()),
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => return Err(invalid(p.as_str(), "values must be a mapping")),
                Err(e) => return Err(invalid(p.as_str(), e)),
            },
        };
        let mut templates = Vec::new();
        let mut helpers = Vec::new();
        for (path, bytes) in &files {
            let Some(name) = path.strip_prefix("templates/") else {
                continue;
            };
            let file = name.rsplit('/').next().unwrap_or(name);
            if file.starts_with('_') {
                helpers.push((path.clone(), text(path, bytes)?));
            } else if file.ends_with(".yaml") || file.ends_with(".yml") || file.ends_with(".tpl") {
                templates.push((path.clone(), text(path, bytes)?));
            }
        }
        Ok(Self {
            name: meta.name,
            version: meta.version,
            app_version: meta.app_version,
            values,
            templates,
            helpers,
        })
    }

    /// Reads the chart in folder `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self, ChartError> {
        let mut files = Vec::new();
        collect(dir, dir, &mut files)?;
        Self::from_files(files)
    }

    /// Reads a chart archive (`.tgz`, one top folder named for the chart, as `helm package`
    /// and chart registries make it). Paths that leave the folder are refused.
    pub fn from_archive(bytes: &[u8]) -> Result<Self, ChartError> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        let mut files = Vec::new();
        let mut top: Option<String> = None;
        let entries = archive.entries().map_err(|e| invalid("chart archive", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| invalid("chart archive", e))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry
                .path()
                .map_err(|e| invalid("chart archive", e))?
                .into_owned();
            if path
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(invalid(
                    path.display().to_string(),
                    "leaves the chart folder",
                ));
            }
            let mut parts = path.components();
            let first = parts
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            let rest = parts.as_path().to_string_lossy().into_owned();
            match &top {
                None => top = Some(first),
                Some(t) if *t != first => {
                    return Err(invalid(
                        path.display().to_string(),
                        "a chart archive holds one top folder",
                    ));
                }
                Some(_) => {}
            }
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| invalid(path.display().to_string(), e))?;
            files.push((rest, bytes));
        }
        Self::from_files(files)
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), ChartError> {
    let entries = std::fs::read_dir(dir).map_err(|e| invalid(dir.display().to_string(), e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else {
            let bytes = std::fs::read(&path).map_err(|e| invalid(path.display().to_string(), e))?;
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.push((relative, bytes));
        }
    }
    Ok(())
}
