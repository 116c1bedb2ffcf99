//! Rendering a chart into manifests, as `helm template` does: each template under `templates/`
//! runs with `.Values`, `.Release`, `.Chart`, `.Capabilities` and `.Template`, and with the
//! chart's named templates (`define` in `_*.tpl`) at hand for `template`, `include` and `tpl`.
//! The output is split into YAML documents; each must be a Kubernetes object.

use crate::chart::Chart;
use gtmpl_ng::helm_functions::{HELM_FUNCTIONS, serde_json_value_to_gtmpl_value};
use gtmpl_ng::{Context, Func, FuncError, Template, Value as Tmpl};
use serde_json::{Value, json};
use std::cell::RefCell;

/// Where the chart is installed.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub name: String,
    pub namespace: String,
}

/// One rendered Kubernetes object and the template it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub template: String,
    pub object: Value,
}

impl Manifest {
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// Why a chart did not render; names the template.
#[derive(Debug, thiserror::Error)]
#[error("{template}: {reason}")]
pub struct RenderError {
    pub template: String,
    pub reason: String,
}

thread_local! {
    /// The chart's named-template files while it renders, for `include` and `tpl`.
    static HELPERS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
    /// How many `include` and `tpl` renders are open on this thread, one inside the other.
    static NESTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Bytes `include` and `tpl` have handed back during this chart's render.
    static INCLUDED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// `include` and `tpl` renders so far during this chart's render.
    static CALLS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// When this chart's render must have ended.
    static DEADLINE: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

/// How many `include` and `tpl` renders one chart's render may make: each is a render of its
/// own with the engine's own loop budget, so without a count a chart could multiply them
/// (two includes of two includes, 24 deep) past any time. Real charts make a few hundred.
pub const MAX_INCLUDE_CALLS: usize = 20_000;
/// How long one chart's render may take, checked at each `include`, `tpl` and template.
pub const RENDER_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// How deep `include` and `tpl` may nest (each is a render of its own, so the engine's own
/// nesting bound does not see them): a chart that includes itself fails here instead of
/// exhausting the stack and taking the EN down. Real charts nest a handful deep.
pub const MAX_INCLUDE_DEPTH: usize = 24;
/// Bytes all `include` and `tpl` calls of one chart's render may hand back together.
pub const MAX_INCLUDED_BYTES: usize = 16 * 1024 * 1024;
/// Bytes a chart's manifests may hold together.
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;
/// Bytes one `nindent` may produce.
pub const MAX_NINDENT_BYTES: usize = 1024 * 1024;

/// A template with every function a chart may call and the chart's named templates.
fn template(helpers: &[(String, String)]) -> Result<Template, RenderError> {
    let mut t = Template::default();
    t.add_funcs(HELM_FUNCTIONS);
    t.add_funcs(&[
        ("include", include as Func),
        ("nindent", nindent as Func),
        ("tpl", tpl as Func),
    ]);
    for (path, text) in helpers {
        t.add_template(path.as_str(), text.as_str())
            .map_err(|e| RenderError {
                template: path.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(t)
}

fn text_arg(args: &[Tmpl], i: usize, function: &str) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Tmpl::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(FuncError::Generic(format!(
            "{function} takes {} arguments",
            i + 1
        ))),
    }
}

/// Renders `text` with the chart's named templates and `dot`, within [`MAX_INCLUDE_DEPTH`]
/// and [`MAX_INCLUDED_BYTES`].
fn render_with_helpers(text: &str, dot: &Tmpl) -> Result<String, FuncError> {
    let depth = NESTED.with(|n| n.get());
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(FuncError::Generic(format!(
            "include and tpl nest deeper than {MAX_INCLUDE_DEPTH} (does a template include itself?)"
        )));
    }
    let calls = CALLS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    if calls > MAX_INCLUDE_CALLS {
        return Err(FuncError::Generic(format!(
            "include and tpl were called more than {MAX_INCLUDE_CALLS} times"
        )));
    }
    if past_deadline() {
        return Err(FuncError::Generic(format!(
            "the chart did not render within {} s",
            RENDER_WITHIN.as_secs()
        )));
    }
    NESTED.with(|n| n.set(depth + 1));
    let rendered = (|| {
        let helpers = HELPERS.with(|h| h.borrow().clone());
        let mut t = template(&helpers).map_err(|e| FuncError::Generic(e.to_string()))?;
        t.parse(text)
            .map_err(|e| FuncError::Generic(e.to_string()))?;
        t.render(&Context::from(dot.clone()))
            .map_err(|e| FuncError::Generic(e.to_string()))
    })();
    NESTED.with(|n| n.set(depth));
    let rendered = rendered?;
    let total = INCLUDED.with(|i| {
        let total = i.get().saturating_add(rendered.len());
        i.set(total);
        total
    });
    if total > MAX_INCLUDED_BYTES {
        return Err(FuncError::Generic(format!(
            "include and tpl produced more than {MAX_INCLUDED_BYTES} bytes"
        )));
    }
    Ok(rendered)
}

fn past_deadline() -> bool {
    DEADLINE.with(|d| d.get().is_some_and(|at| std::time::Instant::now() > at))
}

/// `include "name" dot`: a named template's output as a string, for pipelines.
fn include(args: &[Tmpl]) -> Result<Tmpl, FuncError> {
    let name = text_arg(args, 0, "include")?;
    let dot = args.get(1).cloned().unwrap_or(Tmpl::Nil);
    let quoted = serde_json::to_string(&name).expect("a string serializes");
    render_with_helpers(&format!("{{{{ template {quoted} . }}}}"), &dot).map(Tmpl::String)
}

/// `tpl text dot`: a string rendered as a template.
fn tpl(args: &[Tmpl]) -> Result<Tmpl, FuncError> {
    let text = text_arg(args, 0, "tpl")?;
    let dot = args.get(1).cloned().unwrap_or(Tmpl::Nil);
    render_with_helpers(&text, &dot).map(Tmpl::String)
}

/// `nindent n text`: a newline, then `text` with every line indented by `n` spaces.
fn nindent(args: &[Tmpl]) -> Result<Tmpl, FuncError> {
    let n: usize = text_arg(args, 0, "nindent")?
        .parse()
        .map_err(|_| FuncError::Generic("nindent: the first argument is a count".into()))?;
    let text = text_arg(args, 1, "nindent")?;
    // The output is bounded before it is made: a count in the billions fails the chart, not
    // the EN's memory.
    let lines = text.split('\n').count();
    let size = n
        .checked_add(1)
        .and_then(|per_line| per_line.checked_mul(lines))
        .and_then(|pads| pads.checked_add(text.len()));
    if size.is_none_or(|size| size > MAX_NINDENT_BYTES) {
        return Err(FuncError::Generic(format!(
            "nindent {n} over {lines} lines makes more than {MAX_NINDENT_BYTES} bytes"
        )));
    }
    let pad = " ".repeat(n);
    let lines: Vec<String> = text.split('\n').map(|l| format!("{pad}{l}")).collect();
    Ok(Tmpl::String(format!("\n{}", lines.join("\n"))))
}

/// Renders every template of `chart` with `values` (the chart's own, already merged with the
/// overrides) for `release`. Templates are rendered in path order; documents that are empty
/// (a template switched off by a condition) are left out.
pub fn render(
    chart: &Chart,
    release: &Release,
    values: &Value,
) -> Result<Vec<Manifest>, RenderError> {
    HELPERS.with(|h| *h.borrow_mut() = chart.helpers.clone());
    NESTED.with(|n| n.set(0));
    INCLUDED.with(|i| i.set(0));
    CALLS.with(|c| c.set(0));
    DEADLINE.with(|d| d.set(Some(std::time::Instant::now() + RENDER_WITHIN)));
    let out = render_all(chart, release, values);
    HELPERS.with(|h| h.borrow_mut().clear());
    DEADLINE.with(|d| d.set(None));
    out
}

fn render_all(
    chart: &Chart,
    release: &Release,
    values: &Value,
) -> Result<Vec<Manifest>, RenderError> {
    let mut manifests = Vec::new();
    let mut bytes = 0usize;
    for (path, text) in &chart.templates {
        let failed = |reason: String| RenderError {
            template: path.clone(),
            reason,
        };
        let dot = serde_json_value_to_gtmpl_value(json!({
            "Values": values,
            "Release": {"Name": release.name, "Namespace": release.namespace,
                        "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
            "Chart": {"Name": chart.name, "Version": chart.version,
                      "AppVersion": chart.app_version.clone().unwrap_or_default()},
            "Capabilities": {"KubeVersion": {"Version": "v1.30.0", "Major": "1", "Minor": "30"}},
            "Template": {"Name": format!("{}/{path}", chart.name),
                         "BasePath": format!("{}/templates", chart.name)},
        }));
        if past_deadline() {
            return Err(failed(format!(
                "the chart did not render within {} s",
                RENDER_WITHIN.as_secs()
            )));
        }
        let mut t = template(&chart.helpers)?;
        t.parse(text.as_str()).map_err(|e| failed(e.to_string()))?;
        let rendered = t
            .render(&Context::from(dot))
            .map_err(|e| failed(e.to_string()))?;
        bytes = bytes.saturating_add(rendered.len());
        if bytes > MAX_MANIFEST_BYTES {
            return Err(failed(format!(
                "the chart renders more than {MAX_MANIFEST_BYTES} bytes of manifests"
            )));
        }
        for document in split_documents(&rendered) {
            let object: Value = serde_yaml::from_str(document)
                .map_err(|e| failed(format!("renders YAML that does not read: {e}")))?;
            if object.is_null() {
                continue;
            }
            for field in ["apiVersion", "kind"] {
                if !object[field].is_string() {
                    return Err(failed(format!("renders an object without {field}")));
                }
            }
            if !object["metadata"]["name"].is_string() {
                return Err(failed("renders an object without metadata.name".into()));
            }
            manifests.push(Manifest {
                template: path.clone(),
                object,
            });
        }
    }
    Ok(manifests)
}

/// The YAML documents of a rendered template, split at `---` lines.
fn split_documents(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            out.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    out.push(&text[start..]);
    out.into_iter().filter(|d| !d.trim().is_empty()).collect()
}
