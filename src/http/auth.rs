//! Access tokens: loaded like the bridge's write keys ([`crate::secret`]), compared in constant
//! time, never logged or echoed.
//!
//! A request carries `Authorization: Bearer <token>` (or `Token <token>`, as InfluxDB clients
//! send it). [`Tokens::authorize`] is the one check every endpoint makes: 401 for a missing or
//! unknown token, 403 for a scope the token lacks, 429 past its rate; [`require`] is the same
//! check as a middleware for whole routers (the read endpoints).

use super::error::ApiError;
use super::rate::Bucket;
use crate::config::{HttpConfig, Scope, TokenConfig, token_env_name};
use crate::exit::{self, ExitError};
use crate::secret::{self, Places, Secret, Source};
use crate::topic::Filters;
use axum::http::{HeaderMap, header};
use std::borrow::Cow;
use std::ffi::OsString;
use std::sync::Mutex;
use std::time::Instant;
use subtle::{Choice, ConstantTimeEq};

/// The shortest token accepted: shorter ones can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// A loaded token.
#[derive(Debug)]
pub struct Token {
    /// The configured name: what logs show.
    pub name: String,
    scopes: Vec<Scope>,
    topics: Option<Filters>,
    secret: Secret,
    bucket: Option<Mutex<Bucket>>,
}

impl Token {
    /// Whether this token may write or command `topic`.
    pub fn may_write(&self, topic: &str) -> bool {
        self.topics.as_ref().is_none_or(|f| f.matches(topic))
    }

    /// [`Token::may_write`] as an answer: 403 naming the topic.
    pub fn check_topic(&self, topic: &str) -> Result<(), ApiError> {
        if self.may_write(topic) {
            return Ok(());
        }
        let shown: String = topic.chars().take(200).collect();
        Err(ApiError::forbidden(format!(
            "token {:?} may not write to topic {shown:?} (outside its topics)",
            self.name
        )))
    }

    /// Take one request from the token's rate; 429 when it is used up.
    fn take(&self, now: Instant) -> Result<(), ApiError> {
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
        b.take(now)
            .map_err(|wait| ApiError::rate_limited(&self.name, wait))
    }
}

/// Every configured token.
#[derive(Debug, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl Tokens {
    /// Load every token's value from the process environment and files. Errors (missing,
    /// unreadable, too short, two tokens with one value) exit 78 and name the place, never the
    /// value. Also returns, per token, where its value came from.
    pub fn load(cfg: &HttpConfig) -> Result<(Tokens, Vec<(String, Source)>), ExitError> {
        Self::load_with(cfg, |name| std::env::var_os(name))
    }

    /// [`Tokens::load`], looking variables up with `env`.
    pub fn load_with(
        cfg: &HttpConfig,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<(Tokens, Vec<(String, Source)>), ExitError> {
        let mut tokens: Vec<Token> = Vec::new();
        let mut sources = Vec::new();
        for t in &cfg.token {
            let (secret, source) = load_one(t, &env)?;
            if let Some(other) = tokens.iter().find(|o| o.secret.expose() == secret.expose()) {
                return Err(ExitError::new(
                    exit::CONFIG,
                    format!(
                        "http tokens {:?} and {:?} have the same value; give each its own",
                        other.name, t.name
                    ),
                ));
            }
            sources.push((t.name.clone(), source));
            tokens.push(Token {
                name: t.name.clone(),
                scopes: t.scopes.clone(),
                topics: t.topics.clone(),
                secret,
                bucket: t.rate.map(|r| Mutex::new(Bucket::new(r))),
            });
        }
        Ok((Tokens { tokens }, sources))
    }

    /// Whether no token is configured (then nothing but `/healthz` answers 200).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token whose value is `presented`. Every token is compared, each in time that
    /// depends only on its own length, so the answer time tells nothing about how much of a
    /// value was right.
    pub fn find(&self, presented: &[u8]) -> Option<&Token> {
        let mut found = None;
        for t in &self.tokens {
            if bool::from(ct_equal(t.secret.expose().as_bytes(), presented)) {
                found = Some(t);
            }
        }
        found
    }

    /// The token of a request, if it may use `scope` and is within its rate.
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<&Token, ApiError> {
        self.authorize_at(headers, scope, Instant::now())
    }

    /// [`Tokens::authorize`], the token also taken as the password of Basic auth (any user
    /// name): OwnTracks and GPSLogger can send only that.
    pub fn authorize_basic(&self, headers: &HeaderMap, scope: Scope) -> Result<&Token, ApiError> {
        self.authorize_with(headers, scope, Instant::now(), true)
    }

    /// [`Tokens::authorize`] at `now`.
    pub fn authorize_at(
        &self,
        headers: &HeaderMap,
        scope: Scope,
        now: Instant,
    ) -> Result<&Token, ApiError> {
        self.authorize_with(headers, scope, now, false)
    }

    fn authorize_with(
        &self,
        headers: &HeaderMap,
        scope: Scope,
        now: Instant,
        basic: bool,
    ) -> Result<&Token, ApiError> {
        let presented = presented(headers, basic).ok_or_else(|| {
            ApiError::unauthorized(if basic {
                "no access token: send the header `Authorization: Bearer <token>`, or the token \
                 as the Basic auth password"
            } else {
                "no access token: send the header `Authorization: Bearer <token>`"
            })
        })?;
        let token = self
            .find(&presented)
            .ok_or_else(|| ApiError::unauthorized("the access token is not valid"))?;
        if !token.scopes.contains(&scope) {
            return Err(ApiError::forbidden(format!(
                "token {:?} does not have the scope {:?}",
                token.name,
                scope.as_str()
            )));
        }
        token.take(now)?;
        Ok(token)
    }
}

fn load_one(
    t: &TokenConfig,
    env: &impl Fn(&str) -> Option<OsString>,
) -> Result<(Secret, Source), ExitError> {
    let places = Places {
        file: t.token_file.as_deref(),
        env: token_env_name(&t.name),
        credential: format!("http-{}.token", t.name),
    };
    let (secret, source) = secret::load_with(&places, env)
        .map_err(|e| ExitError::new(exit::CONFIG, format!("http token {:?}: {e}", t.name)))?;
    if secret.expose().len() < MIN_TOKEN_LEN {
        return Err(ExitError::new(
            exit::CONFIG,
            format!(
                "http token {:?}: the value in {source} is shorter than {MIN_TOKEN_LEN} \
                 characters and could be guessed (make one with `openssl rand -hex 24`)",
                t.name
            ),
        ));
    }
    Ok((secret, source))
}

/// The token of an `Authorization: Bearer <token>` or `Token <token>` header.
fn presented(headers: &HeaderMap, basic: bool) -> Option<Cow<'_, [u8]>> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = v.split_at(v.iter().position(|&b| b == b' ')?);
    let rest = rest.trim_ascii();
    if scheme.eq_ignore_ascii_case(b"bearer") || scheme.eq_ignore_ascii_case(b"token") {
        return (!rest.is_empty()).then_some(Cow::Borrowed(rest));
    }
    if basic && scheme.eq_ignore_ascii_case(b"basic") {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        // `user:password`: the user name may be anything (it holds no `:`, RFC 7617).
        let colon = decoded.iter().position(|&b| b == b':')?;
        let password = &decoded[colon + 1..];
        return (!password.is_empty()).then(|| Cow::Owned(password.to_vec()));
    }
    None
}

/// `secret == presented`, in time that depends on the length of `secret` only.
fn ct_equal(secret: &[u8], presented: &[u8]) -> Choice {
    let same_len = (secret.len() as u64).ct_eq(&(presented.len() as u64));
    let mut acc = Choice::from(1);
    for (i, s) in secret.iter().enumerate() {
        let p = presented.get(i).copied().unwrap_or(0);
        acc &= s.ct_eq(&p);
    }
    acc & same_len
}

/// The name of the token that was let through, for handlers behind [`require`].
#[derive(Debug, Clone)]
pub struct TokenName(pub String);

/// Middleware: let a request through only with a token that has `scope` (and rate left); the
/// token's name goes into the request's extensions as [`TokenName`].
pub async fn require(
    tokens: std::sync::Arc<Tokens>,
    scope: Scope,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let name = match tokens.authorize(req.headers(), scope) {
        Ok(t) => t.name.clone(),
        Err(e) => return e.into_response(),
    };
    req.extensions_mut().insert(TokenName(name));
    next.run(req).await
}

/// For `check-config`: where each token's value comes from (never the value).
pub fn describe(cfg: &HttpConfig) -> Result<Vec<String>, ExitError> {
    let (_, sources) = Tokens::load(cfg)?;
    Ok(sources
        .into_iter()
        .map(|(name, source)| format!("http token {name}: value from {source} (********)"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use axum::http::HeaderValue;
    use std::collections::HashMap;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";

    fn cfg(extra: &str) -> HttpConfig {
        Config::parse(
            &format!(
                "[[http.token]]\nname = \"phone\"\nscopes = [\"ingest\"]\n\
                 topics = \"iotitan/http/phone1/#\"\n{extra}\
                 [[http.token]]\nname = \"ops-1\"\nscopes = [\"read\", \"command\"]\n"
            ),
            "t",
        )
        .unwrap()
        .http
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let m: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn tokens(extra: &str) -> Tokens {
        Tokens::load_with(
            &cfg(extra),
            env(&[
                ("IOTITAN_HTTP_TOKEN_PHONE", A),
                ("IOTITAN_HTTP_TOKEN_OPS_1", B),
            ]),
        )
        .unwrap()
        .0
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn schemes_scopes_and_topics() {
        let t = tokens("");
        let ok = t.authorize(&headers(&format!("Bearer {A}")), Scope::Ingest);
        assert_eq!(ok.unwrap().name, "phone");
        let ok = t.authorize(&headers(&format!("token  {B}")), Scope::Command);
        assert_eq!(ok.unwrap().name, "ops-1");
        let e = t.authorize(&HeaderMap::new(), Scope::Read).unwrap_err();
        assert_eq!(e.status.as_u16(), 401);
        for bad in [
            format!("Bearer {A}x"),
            format!("Basic {A}"),
            "Bearer".into(),
            format!("Bearer {}", &A[1..]),
        ] {
            let e = t.authorize(&headers(&bad), Scope::Ingest).unwrap_err();
            assert_eq!(e.status.as_u16(), 401, "{bad}");
            assert!(!e.message.contains(A), "the token is never echoed");
        }
        let e = t
            .authorize(&headers(&format!("Bearer {A}")), Scope::Read)
            .unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (403, "forbidden"));
        let phone = t.find(A.as_bytes()).unwrap();
        assert!(
            phone
                .check_topic("iotitan/http/phone1/battery/level")
                .is_ok()
        );
        let e = phone.check_topic("iotitan/http/phone2/x").unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
        assert!(t.find(B.as_bytes()).unwrap().may_write("any/topic"));
    }

    #[test]
    fn rate_gives_429_with_retry_after() {
        let t = tokens("rate = \"2/s\"\n");
        let h = headers(&format!("Bearer {A}"));
        let now = Instant::now();
        assert!(t.authorize_at(&h, Scope::Ingest, now).is_ok());
        assert!(t.authorize_at(&h, Scope::Ingest, now).is_ok());
        let e = t.authorize_at(&h, Scope::Ingest, now).unwrap_err();
        assert_eq!((e.status.as_u16(), e.retry_after), (429, Some(1)));
        // The other token has no rate.
        let h = headers(&format!("Bearer {B}"));
        for _ in 0..100 {
            assert!(t.authorize_at(&h, Scope::Read, now).is_ok());
        }
    }

    #[test]
    fn loading_errors_name_the_place_not_the_value() {
        let e = Tokens::load_with(&cfg(""), env(&[("IOTITAN_HTTP_TOKEN_PHONE", A)])).unwrap_err();
        assert_eq!(e.code, exit::CONFIG);
        assert!(
            e.message.contains("IOTITAN_HTTP_TOKEN_OPS_1")
                && e.message.contains("http-ops-1.token"),
            "{}",
            e.message
        );
        let e = Tokens::load_with(
            &cfg(""),
            env(&[
                ("IOTITAN_HTTP_TOKEN_PHONE", "short"),
                ("IOTITAN_HTTP_TOKEN_OPS_1", B),
            ]),
        )
        .unwrap_err();
        assert!(
            e.message.contains("shorter") && !e.message.contains("short\""),
            "{}",
            e.message
        );
        let e = Tokens::load_with(
            &cfg(""),
            env(&[
                ("IOTITAN_HTTP_TOKEN_PHONE", A),
                ("IOTITAN_HTTP_TOKEN_OPS_1", A),
            ]),
        )
        .unwrap_err();
        assert!(
            e.message.contains("same value") && !e.message.contains(A),
            "{}",
            e.message
        );
    }

    #[test]
    fn credential_and_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("iotitan_http-phone.token"),
            format!("{A}\n"),
        )
        .unwrap();
        let file = dir.path().join("ops.token");
        std::fs::write(&file, B).unwrap();
        let mut c = cfg("");
        c.token[1].token_file = Some(file.clone());
        let (t, sources) = Tokens::load_with(
            &c,
            env(&[("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap())]),
        )
        .unwrap();
        assert!(matches!(&sources[0].1, Source::Credential(_)));
        assert_eq!(sources[1].1, Source::File(file));
        assert_eq!(t.find(B.as_bytes()).unwrap().name, "ops-1");
    }

    #[test]
    fn constant_time_compare_is_equality() {
        for (a, b, eq) in [
            (&b"abc"[..], &b"abc"[..], true),
            (b"abc", b"abd", false),
            (b"abc", b"ab", false),
            (b"abc", b"abcd", false),
            (b"", b"", true),
        ] {
            assert_eq!(bool::from(ct_equal(a, b)), eq, "{a:?} {b:?}");
        }
    }
}
