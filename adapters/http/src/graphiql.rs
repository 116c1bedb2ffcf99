//! GraphiQL at `/graphiql`, working with no internet: GraphiQL's and React's browser builds are
//! vendored under `ui/graphiql/` (gzipped, refreshed by hand with `ui/graphiql/vendor.sh`),
//! embedded in the binary and served from `/graphiql/assets/`; nothing is fetched from a CDN.
//! Queries and mutations go to `/graphql` with the headers of GraphiQL's header editor
//! (`EOS-Tenant` names the tenant).

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use std::io::Read;

/// One vendored file: its name under `/graphiql/assets/`, media type and gzipped bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    gz: &'static [u8],
}

const ASSETS: [Asset; 4] = [
    Asset {
        name: "react.production.min.js",
        media_type: "text/javascript; charset=utf-8",
        gz: include_bytes!("../../../ui/graphiql/react.production.min.js.gz"),
    },
    Asset {
        name: "react-dom.production.min.js",
        media_type: "text/javascript; charset=utf-8",
        gz: include_bytes!("../../../ui/graphiql/react-dom.production.min.js.gz"),
    },
    Asset {
        name: "graphiql.min.js",
        media_type: "text/javascript; charset=utf-8",
        gz: include_bytes!("../../../ui/graphiql/graphiql.min.js.gz"),
    },
    Asset {
        name: "graphiql.min.css",
        media_type: "text/css; charset=utf-8",
        gz: include_bytes!("../../../ui/graphiql/graphiql.min.css.gz"),
    },
];

/// The query GraphiQL opens with.
const FIRST_QUERY: &str = "# EOS GraphQL: queries and mutations over the control plane.\n# The tenant is the EOS-Tenant header (Headers, below).\n{\n  sites { items { id loConnected lastSeen } }\n  devices(limit: 20) { items { id status model site { id } } }\n}\n";

/// The page.
pub async fn page() -> Html<String> {
    let first_query = serde_json::to_string(FIRST_QUERY).expect("a string serializes");
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>EOS GraphiQL</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/graphiql/assets/graphiql.min.css">
<style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="/graphiql/assets/react.production.min.js"></script>
<script src="/graphiql/assets/react-dom.production.min.js"></script>
<script src="/graphiql/assets/graphiql.min.js"></script>
<script>
  // A token may come in the page's fragment (/graphiql#token=…), which never reaches a server
  // log; otherwise paste "Authorization": "Bearer …" into the headers editor.
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const headers = {{ "EOS-Tenant": "default" }};
  if (token) {{ headers["Authorization"] = "Bearer " + token; history.replaceState(null, "", location.pathname); }}
  const fetcher = GraphiQL.createFetcher({{ url: "/graphql" }});
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {{
      fetcher,
      defaultQuery: {first_query},
      defaultHeaders: JSON.stringify(headers, null, 2),
      defaultEditorToolsVisibility: "headers",
      shouldPersistHeaders: true,
    }})
  );
</script>
</body>
</html>
"#
    ))
}

/// A vendored file, gzipped when the client takes gzip (every browser does), else plain.
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such GraphiQL file").into_response();
    };
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let cache = (header::CACHE_CONTROL, "public, max-age=86400");
    let vary = (header::VARY, "accept-encoding");
    let media = (header::CONTENT_TYPE, asset.media_type);
    if gzip {
        return (
            [media, cache, vary, (header::CONTENT_ENCODING, "gzip")],
            asset.gz,
        )
            .into_response();
    }
    let mut plain = Vec::new();
    match flate2::read::GzDecoder::new(asset.gz).read_to_end(&mut plain) {
        Ok(_) => ([media, cache, vary], plain).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the embedded {name} does not unpack: {e}"),
        )
            .into_response(),
    }
}
