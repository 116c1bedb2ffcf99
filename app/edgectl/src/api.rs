//! The CO's REST API as edgectl uses it: requests under `/api/v1`, lists read page after page,
//! and errors turned into one readable message with the problem's field errors.

use anyhow::{Context, bail};
use serde_json::Value;

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url(path))).await
    }
    /// Every item of a list, page after page (the CO gives the next page's cursor in
    /// `X-Next-Cursor`).
    pub async fn list(&self, path: &str) -> anyhow::Result<Value> {
        self.list_with(path, &[]).await
    }

    /// Like `list`, with query parameters (filters).
    pub async fn list_with(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut req = self.http.get(self.url(path)).query(query);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c)]);
            }
            let (page, next) = self.send_paged(req).await?;
            all.extend(page.as_array().cloned().unwrap_or_default());
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(Value::Array(all)),
            }
        }
    }
    pub async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        Ok(self.send_paged(req).await?.0)
    }
    /// The answer's body, and the next page's cursor when the answer is a page of a list.
    async fn send_paged(
        &self,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<(Value, Option<String>)> {
        let resp = req.send().await.with_context(|| {
            format!(
                "cannot reach the CO at {} (set --server or EOS_SERVER)",
                self.base
            )
        })?;
        let status = resp.status();
        let next = resp
            .headers()
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let mut msg = format!(
                "{} {}",
                status.as_u16(),
                body["detail"]
                    .as_str()
                    .unwrap_or(body["title"].as_str().unwrap_or("request failed"))
            );
            for e in body["errors"].as_array().into_iter().flatten() {
                msg.push_str(&format!(
                    "\n  {}: {}",
                    e["field"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                ));
            }
            bail!(msg);
        }
        Ok((body, next))
    }
}
