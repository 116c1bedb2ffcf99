//! `edgectl login`: the authorization code flow with PKCE (RFC 7636) on a loopback redirect
//! (RFC 8252). edgectl listens on `127.0.0.1` at a free port, shows the provider's address (and
//! opens a browser where it can), takes the code the provider redirects back with, checks the
//! state, and exchanges the code for tokens. [`refresh`] renews an access token with the
//! refresh token. What comes back is a [`Session`], which edgectl keeps in its token cache.

use crate::http::Http;
use openidconnect::core::{CoreAuthPrompt, CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::url::Url;
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, RefreshToken, Scope,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long `login` waits for the browser to come back.
pub const CALLBACK_WAIT: Duration = Duration::from_secs(300);

/// Where and how to log in, as the CO says (`GET /api/v1/auth/provider`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LoginSettings {
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub resource: Option<String>,
}

/// A logged-in session: the tokens and what is needed to refresh them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    #[serde(flatten)]
    pub settings: LoginSettings,
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When the access token expires, in seconds since the epoch.
    pub expires_at: u64,
}

impl Session {
    /// Whether the access token expires within `secs` of now.
    pub fn expires_within(&self, secs: u64) -> bool {
        now() + secs >= self.expires_at
    }
}

/// Why logging in or refreshing failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoginError(pub String);

fn fail(what: &str, e: impl std::fmt::Display) -> LoginError {
    LoginError(format!("{what}: {e}"))
}

/// Logs in: `show` gets the address to open in a browser. `login_hint` names the user to the
/// provider (it may prefill its login form).
pub async fn login(
    settings: &LoginSettings,
    login_hint: Option<&str>,
    show: impl FnOnce(&str),
) -> Result<Session, LoginError> {
    let http = Http::new();
    let client = client(settings, &http).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| fail("cannot listen on loopback for the provider's answer", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| fail("loopback", e))?
        .port();
    let redirect = RedirectUrl::new(format!("http://127.0.0.1:{port}/callback"))
        .expect("a loopback address is a URL");
    let client = client.set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .add_scopes(
            settings
                .scopes
                .iter()
                .filter(|s| *s != "openid")
                .map(|s| Scope::new(s.clone())),
        );
    if settings.scopes.iter().any(|s| s == "offline_access") {
        // OpenID Connect grants offline access (a refresh token) only with consent asked.
        request = request.add_prompt(CoreAuthPrompt::Consent);
    }
    if let Some(hint) = login_hint {
        request = request.add_extra_param("login_hint", hint.to_owned());
    }
    if let Some(resource) = &settings.resource {
        request = request.add_extra_param("resource", resource.clone());
    }
    let (url, state, _nonce) = request.url();
    show(url.as_str());
    let code = tokio::time::timeout(CALLBACK_WAIT, callback(&listener, state.secret()))
        .await
        .map_err(|_| {
            LoginError(format!(
                "no answer from the browser within {} s",
                CALLBACK_WAIT.as_secs()
            ))
        })??;
    let mut exchange = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| fail("the provider has no token endpoint", e))?
        .set_pkce_verifier(verifier);
    if let Some(resource) = &settings.resource {
        exchange = exchange.add_extra_param("resource", resource.clone());
    }
    let tokens = exchange
        .request_async(&http)
        .await
        .map_err(|e| fail("the provider refused the code", crate::verify::chain(&e)))?;
    Ok(session(settings, &tokens, None))
}

/// A new access token for `session`, by its refresh token.
pub async fn refresh(session: &Session) -> Result<Session, LoginError> {
    let Some(refresh) = &session.refresh_token else {
        return Err(LoginError(
            "the session has no refresh token; log in again".into(),
        ));
    };
    let http = Http::new();
    let client = client(&session.settings, &http).await?;
    let refresh = RefreshToken::new(refresh.clone());
    let mut request = client
        .exchange_refresh_token(&refresh)
        .map_err(|e| fail("the provider has no token endpoint", e))?;
    if let Some(resource) = &session.settings.resource {
        request = request.add_extra_param("resource", resource.clone());
    }
    let tokens = request.request_async(&http).await.map_err(|e| {
        fail(
            "the provider refused the refresh token",
            crate::verify::chain(&e),
        )
    })?;
    Ok(self::session(
        &session.settings,
        &tokens,
        session.refresh_token.clone(),
    ))
}

async fn client(
    settings: &LoginSettings,
    http: &Http,
) -> Result<
    openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    LoginError,
> {
    let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(|e| fail("issuer", e))?;
    let metadata = CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| {
            fail(
                &format!("cannot discover the provider {}", settings.issuer),
                crate::verify::chain(&e),
            )
        })?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        None,
    ))
}

fn session(
    settings: &LoginSettings,
    tokens: &openidconnect::core::CoreTokenResponse,
    previous_refresh: Option<String>,
) -> Session {
    let lifetime = tokens.expires_in().map_or(300, |d| d.as_secs());
    Session {
        settings: settings.clone(),
        access_token: tokens.access_token().secret().clone(),
        refresh_token: tokens
            .refresh_token()
            .map(|t| t.secret().clone())
            .or(previous_refresh),
        expires_at: now() + lifetime,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Waits for the provider's redirect to `/callback`, answers the browser, and returns the code.
async fn callback(listener: &tokio::net::TcpListener, state: &str) -> Result<String, LoginError> {
    loop {
        let (mut stream, _) = listener.accept().await.map_err(|e| fail("loopback", e))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&head);
        let target = text
            .lines()
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .unwrap_or("/");
        let Ok(url) = Url::parse(&format!("http://127.0.0.1{target}")) else {
            continue;
        };
        if url.path() != "/callback" {
            let _ = reply(&mut stream, 404, "Not here.").await;
            continue;
        }
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if param("state").as_deref() != Some(state) {
            let _ = reply(
                &mut stream,
                400,
                "This answer is not for this login (state).",
            )
            .await;
            continue;
        }
        if let Some(error) = param("error") {
            let why = match param("error_description") {
                Some(d) => format!("{error}: {d}"),
                None => error,
            };
            let _ = reply(&mut stream, 200, &format!("Login failed: {why}")).await;
            return Err(LoginError(format!("the provider refused the login: {why}")));
        }
        let Some(code) = param("code") else {
            let _ = reply(&mut stream, 400, "The answer has no code.").await;
            continue;
        };
        let _ = reply(
            &mut stream,
            200,
            "Logged in to EOS. You can close this window and go back to edgectl.",
        )
        .await;
        return Ok(code);
    }
}

async fn reply(stream: &mut tokio::net::TcpStream, status: u16, text: &str) -> std::io::Result<()> {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>EOS login</title><p>{}</p>",
        text.replace('&', "&amp;").replace('<', "&lt;")
    );
    let response = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        if status == 200 { "OK" } else { "Bad Request" },
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
