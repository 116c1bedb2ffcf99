//! The API reference page at `/api/reference`: the committed OpenAPI document rendered as one
//! self-contained HTML page (inline style, no script, nothing fetched from elsewhere), so it
//! works on a site with no internet.

use serde_json::Value;
use std::fmt::Write;
use std::sync::OnceLock;

/// The page, rendered once from the OpenAPI document the code generates.
pub fn page() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| {
        let doc: Value =
            serde_json::from_str(&crate::openapi_json()).expect("the OpenAPI document is JSON");
        render(&doc)
    })
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// A schema's type as a short phrase, linking to named schemas.
fn type_of(schema: &Value) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema[key].as_array() {
            let parts: Vec<String> = options.iter().map(type_of).collect();
            return parts.join(" | ");
        }
    }
    let kind = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".into(),
    };
    let kind = esc(&kind);
    if kind.starts_with("array") {
        return format!("array of {}", type_of(&schema["items"]));
    }
    match schema["format"].as_str() {
        Some(f) => format!("{kind} ({})", esc(f)),
        None => kind,
    }
}

fn anchor(method: &str, path: &str) -> String {
    let mut a = format!("op-{method}");
    for c in path.chars() {
        a.push(if c.is_ascii_alphanumeric() { c } else { '-' });
    }
    a
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;\
padding:0 1rem;color:#1d2330}code,.path{font-family:ui-monospace,monospace}\
.method{display:inline-block;min-width:4.5rem;font-weight:bold;text-transform:uppercase}\
.get{color:#1a7f37}.post{color:#0550ae}.patch{color:#8250df}.delete{color:#cf222e}\
table{border-collapse:collapse;width:100%;margin:.5rem 0}td,th{border:1px solid #d0d7de;\
padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f6f8fa}\
section{border-top:1px solid #d0d7de;padding-top:.5rem;margin-top:1.5rem}";

fn render(doc: &Value) -> String {
    let info = &doc["info"];
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} — API reference</title><style>{STYLE}</style></head><body>\
         <h1>{title} <small>{version}</small></h1><p>{description}</p>\
         <p>The machine-readable document: <a href=\"/api/v1/openapi.json\">\
         /api/v1/openapi.json</a> (OpenAPI {openapi}).</p><h2>Operations</h2><ul>",
        title = esc(text(info, "title")),
        version = esc(text(info, "version")),
        description = esc(text(info, "description")),
        openapi = esc(text(doc, "openapi")),
    );
    let empty = serde_json::Map::new();
    let paths = doc["paths"].as_object().unwrap_or(&empty);
    let operations: Vec<(&str, &str, &Value)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap_or(&empty)
                .iter()
                .map(move |(method, op)| (path.as_str(), method.as_str(), op))
        })
        .collect();
    for (path, method, op) in &operations {
        let _ = write!(
            h,
            "<li><a href=\"#{}\"><span class=\"method {method}\">{method}</span> \
             <span class=\"path\">{}</span></a> {}</li>",
            anchor(method, path),
            esc(path),
            esc(text(op, "summary"))
        );
    }
    h.push_str("</ul>");
    for (path, method, op) in &operations {
        let _ = write!(
            h,
            "<section id=\"{}\"><h3><span class=\"method {method}\">{method}</span> \
             <span class=\"path\">{}</span></h3><p>{}</p><p>{}</p>",
            anchor(method, path),
            esc(path),
            esc(text(op, "summary")),
            esc(text(op, "description"))
        );
        if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
            h.push_str(
                "<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th>\
                 <th>Required</th><th>Description</th></tr>",
            );
            for p in params {
                let _ = write!(
                    h,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(text(p, "name")),
                    esc(text(p, "in")),
                    type_of(&p["schema"]),
                    if p["required"] == true { "yes" } else { "no" },
                    esc(text(p, "description"))
                );
            }
            h.push_str("</table>");
        }
        if let Some(content) = op["requestBody"]["content"].as_object() {
            h.push_str("<h4>Request body</h4><ul>");
            for (media, body) in content {
                let _ = write!(
                    h,
                    "<li><code>{}</code>: {}</li>",
                    esc(media),
                    type_of(&body["schema"])
                );
            }
            h.push_str("</ul>");
        }
        h.push_str(
            "<h4>Responses</h4><table><tr><th>Status</th><th>Description</th><th>Body</th>\
             <th>Headers</th></tr>",
        );
        for (status, r) in op["responses"].as_object().unwrap_or(&empty) {
            let body: Vec<String> = r["content"]
                .as_object()
                .unwrap_or(&empty)
                .iter()
                .map(|(media, c)| format!("<code>{}</code>: {}", esc(media), type_of(&c["schema"])))
                .collect();
            let headers: Vec<String> = r["headers"]
                .as_object()
                .unwrap_or(&empty)
                .iter()
                .map(|(name, hd)| {
                    format!(
                        "<code>{}</code>: {}",
                        esc(name),
                        esc(text(hd, "description"))
                    )
                })
                .collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(status),
                esc(text(r, "description")),
                body.join("<br>"),
                headers.join("<br>")
            );
        }
        h.push_str("</table></section>");
    }
    h.push_str("<h2>Schemas</h2>");
    let schemas = doc["components"]["schemas"].as_object().unwrap_or(&empty);
    for (name, schema) in schemas {
        let _ = write!(
            h,
            "<section id=\"schema-{0}\"><h3>{0}</h3><p>{1}</p>",
            esc(name),
            esc(text(schema, "description"))
        );
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = schema["properties"].as_object() {
            h.push_str(
                "<table><tr><th>Field</th><th>Type</th><th>Required</th><th>Description</th></tr>",
            );
            for (field, p) in props {
                let _ = write!(
                    h,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(field),
                    type_of(p),
                    if required.contains(&field.as_str()) {
                        "yes"
                    } else {
                        "no"
                    },
                    esc(text(p, "description"))
                );
            }
            h.push_str("</table>");
        } else {
            let _ = write!(h, "<p>{}</p>", type_of(schema));
        }
        h.push_str("</section>");
    }
    h.push_str("</body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_and_schema_is_on_the_page_and_nothing_comes_from_elsewhere() {
        let page = page();
        let doc: Value = serde_json::from_str(&crate::openapi_json()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                assert!(page.contains(&anchor(method, path)), "{method} {path}");
            }
        }
        for name in doc["components"]["schemas"].as_object().unwrap().keys() {
            assert!(page.contains(&format!("id=\"schema-{name}\"")), "{name}");
        }
        for outside in ["http://", "https://", "<script", "src="] {
            assert!(!page.contains(outside), "the page refers to {outside}");
        }
        assert!(page.contains("href=\"#schema-Deployment\""));
    }

    #[test]
    fn text_from_the_document_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(
            type_of(
                &serde_json::json!({"type": "array", "items": {"$ref": "#/components/schemas/Site"}})
            ),
            "array of <a href=\"#schema-Site\">Site</a>"
        );
    }
}
