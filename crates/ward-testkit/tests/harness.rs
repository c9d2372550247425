//! The harness proves itself against the real IdP, without Ward: a hand-made authorization
//! request, the dev login pages, the token endpoint, and every ID-token test hook.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use url::Url;
use ward_testkit::{
    Browser, CLIENT_ID, CLIENT_SECRET, ClientAuth, Idp, IdpOptions, jwt_claims, jwt_header,
};

/// Nothing listens here: the harness never follows the IdP's final redirect.
const BFF_ORIGIN: &str = "http://localhost:9";

fn random_b64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the OS RNG works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One authorization request: its URL and the values the client keeps to finish it.
struct AuthRequest {
    url: String,
    state: String,
    nonce: String,
    verifier: String,
}

fn auth_request(idp: &Idp) -> AuthRequest {
    let verifier = random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
    let state = random_b64(16);
    let nonce = random_b64(16);
    let mut url = Url::parse(&idp.url("/auth")).expect("issuer is a URL");
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", &idp.redirect_uri())
        .append_pair("scope", "openid email profile offline_access")
        .append_pair("prompt", "consent")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce);
    AuthRequest {
        url: url.into(),
        state,
        nonce,
        verifier,
    }
}

/// Exchanges `code` at the token endpoint; returns the status and the JSON body.
async fn exchange(
    idp: &Idp,
    auth: &AuthRequest,
    code: &str,
    client_auth: ClientAuth,
) -> anyhow::Result<(u16, Value)> {
    let redirect_uri = idp.redirect_uri();
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", auth.verifier.as_str()),
    ];
    let request = reqwest::Client::new().post(idp.url("/token"));
    let request = match client_auth {
        ClientAuth::Basic => request.basic_auth(CLIENT_ID, Some(CLIENT_SECRET)),
        ClientAuth::Post => {
            form.push(("client_id", CLIENT_ID));
            form.push(("client_secret", CLIENT_SECRET));
            request
        }
        ClientAuth::PrivateKeyJwt | ClientAuth::TlsClientAuth => {
            anyhow::bail!("these exchanges authenticate with a secret")
        }
    };
    let response = request.form(&form).send().await.context("POST /token")?;
    let status = response.status().as_u16();
    let body = response.json().await.context("token response is JSON")?;
    Ok((status, body))
}

/// Logs in (or, with an IdP session, only consents) and returns the code, after checking the
/// callback redirect carries `state` and `iss`.
async fn login_for_code(
    browser: &Browser,
    idp: &Idp,
    auth: &AuthRequest,
    user: &str,
) -> anyhow::Result<String> {
    let reply = browser.login_at_idp(&auth.url, user).await?;
    let location = reply.location().context("final redirect has a Location")?;
    if !location.starts_with(&format!("{}?", idp.redirect_uri())) {
        bail!("final redirect goes to {location}, not the redirect URI");
    }
    assert_eq!(
        reply.location_param("state").as_deref(),
        Some(auth.state.as_str())
    );
    assert_eq!(reply.location_param("iss").as_deref(), Some(idp.issuer()));
    reply.location_param("code").context("callback has a code")
}

async fn login_and_exchange(
    browser: &Browser,
    idp: &Idp,
    user: &str,
) -> anyhow::Result<(AuthRequest, Value)> {
    let auth = auth_request(idp);
    let code = login_for_code(browser, idp, &auth, user).await?;
    let (status, tokens) = exchange(idp, &auth, &code, ClientAuth::Basic).await?;
    if status != 200 {
        bail!("token endpoint answered {status}: {tokens}");
    }
    Ok((auth, tokens))
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("time fits i64")
}

/// Verifies an RS256 JWT against the JWK with its `kid` in `jwks`; `Ok(false)` if the kid is
/// unknown or the signature does not verify.
fn rs256_verifies(jwt: &str, jwks: &Value) -> anyhow::Result<bool> {
    let header = jwt_header(jwt)?;
    let Some(kid) = header["kid"].as_str() else {
        return Ok(false);
    };
    let Some(key) = jwks["keys"]
        .as_array()
        .context("jwks has keys")?
        .iter()
        .find(|k| k["kid"] == kid)
    else {
        return Ok(false);
    };
    let field = |name: &str| -> anyhow::Result<Vec<u8>> {
        let text = key[name].as_str().context("JWK field")?;
        Ok(URL_SAFE_NO_PAD.decode(text)?)
    };
    let public = RsaPublicKeyComponents {
        n: field("n")?,
        e: field("e")?,
    };
    let (signed, signature) = jwt.rsplit_once('.').context("JWT has a signature part")?;
    let signature = URL_SAFE_NO_PAD.decode(signature)?;
    Ok(public
        .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
        .is_ok())
}

async fn jwks(idp: &Idp) -> anyhow::Result<Value> {
    Ok(reqwest::get(idp.url("/jwks")).await?.json().await?)
}

#[tokio::test]
async fn code_flow_through_the_dev_pages_yields_tokens_and_the_wrong_aud_hook_changes_aud()
-> anyhow::Result<()> {
    let idp = Idp::start(IdpOptions::new(BFF_ORIGIN)).await?;
    assert!(idp.issuer().starts_with("http://127.0.0.1:"));
    let browser = Browser::new()?;

    let (auth, tokens) = login_and_exchange(&browser, &idp, "alice").await?;
    for field in ["access_token", "id_token", "refresh_token"] {
        assert!(
            tokens[field].is_string(),
            "token response lacks {field}: keys {:?}",
            tokens.as_object().map(|o| o.keys().collect::<Vec<_>>())
        );
    }
    let id_token = tokens["id_token"].as_str().context("id_token")?;
    let claims = jwt_claims(id_token)?;
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["nonce"], auth.nonce.as_str());
    assert_eq!(claims["email"], "alice@example.test");
    assert!(rs256_verifies(id_token, &jwks(&idp).await?)?);
    assert!(
        browser.cookie("127.0.0.1", "_session").is_some(),
        "the IdP session cookie is kept"
    );

    idp.set_id_token_mode("wrong-aud").await?;
    // Same browser: the IdP session skips the login page and only asks for consent.
    let (_, tokens) = login_and_exchange(&browser, &idp, "alice").await?;
    let claims = jwt_claims(tokens["id_token"].as_str().context("id_token")?)?;
    assert_ne!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["sub"], "alice");

    // A client registered for client_secret_basic may not switch to client_secret_post.
    let (status, body) = exchange(&idp, &auth, "any-code", ClientAuth::Post).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    assert_eq!(idp.stats().await?.token_requests, 3);
    assert!(idp.logs().contains("READY "));
    Ok(())
}

/// An ID token the IdP minted in some mode, read apart and checked against its JWKS.
struct Minted<'a> {
    id_token: &'a str,
    header: Value,
    claims: Value,
    /// Whether its RS256 signature verifies with the IdP's JWKS now.
    verifies: bool,
    now: i64,
    exp: i64,
    iat: i64,
    /// `aud`, `iss`, `nonce`, `exp` and `iat` as an unmodified token has them.
    untouched_claims: bool,
    nonce: &'a str,
}

impl<'a> Minted<'a> {
    async fn read(idp: &Idp, auth: &'a AuthRequest, id_token: &'a str) -> anyhow::Result<Self> {
        let header = jwt_header(id_token)?;
        let claims = jwt_claims(id_token)?;
        let verifies = rs256_verifies(id_token, &jwks(idp).await?)?;
        let now = now();
        let exp = claims["exp"].as_i64().context("exp")?;
        let iat = claims["iat"].as_i64().context("iat")?;
        let untouched_claims = claims["aud"] == CLIENT_ID
            && claims["iss"] == idp.issuer()
            && claims["nonce"] == auth.nonce.as_str()
            && exp > now
            && iat <= now + 5;
        Ok(Self {
            id_token,
            header,
            claims,
            verifies,
            now,
            exp,
            iat,
            untouched_claims,
            nonce: &auth.nonce,
        })
    }

    /// What `mode` documents: the one mutation, and everything else untouched.
    async fn check(&self, mode: &str, idp: &Idp, before_rotation: &Value) -> anyhow::Result<()> {
        match mode {
            "none" | "bad-signature" | "unknown-kid" | "rotated-key" | "alg-none" => {
                self.check_signing_mode(mode, idp, before_rotation).await
            }
            _ => self.check_claims_mode(mode, idp),
        }
    }

    /// Modes that change how the token is signed, not what it says.
    async fn check_signing_mode(
        &self,
        mode: &str,
        idp: &Idp,
        before_rotation: &Value,
    ) -> anyhow::Result<()> {
        let &Self {
            id_token,
            ref header,
            verifies,
            untouched_claims,
            ..
        } = self;
        match mode {
            "none" => assert!(verifies && untouched_claims && header["kid"] == "test-rs256"),
            "bad-signature" => {
                assert!(!verifies && untouched_claims && header["kid"] == "test-rs256")
            }
            "unknown-kid" => {
                assert!(!verifies && untouched_claims);
                assert!(
                    !jwks(idp)
                        .await?
                        .to_string()
                        .contains(r#""kid":"unknown-kid""#)
                );
                assert_eq!(header["kid"], "unknown-kid");
            }
            "rotated-key" => {
                assert!(
                    verifies && untouched_claims,
                    "verifies with the newly published key"
                );
                assert_eq!(header["kid"], "rotated");
                assert_eq!(jwks(idp).await?["keys"].as_array().map(Vec::len), Some(2));
                assert!(
                    !rs256_verifies(id_token, before_rotation)?,
                    "the old JWKS lacks it"
                );
            }
            "alg-none" => {
                assert_eq!(header["alg"], "none");
                assert!(id_token.ends_with('.'), "empty signature");
                assert!(untouched_claims);
            }
            other => bail!("mode {other} not checked"),
        }
        Ok(())
    }

    /// Modes that change one claim of a token signed as usual.
    fn check_claims_mode(&self, mode: &str, idp: &Idp) -> anyhow::Result<()> {
        let &Self {
            ref claims,
            verifies,
            now,
            exp,
            iat,
            nonce,
            ..
        } = self;
        match mode {
            "wrong-aud" => assert!(verifies && claims["aud"] != CLIENT_ID),
            "wrong-iss" => assert!(verifies && claims["iss"] != idp.issuer()),
            "wrong-nonce" => {
                assert!(verifies && claims["nonce"].is_string() && claims["nonce"] != nonce)
            }
            "expired" => assert!(verifies && exp < now - 60),
            "future-iat" => assert!(verifies && iat > now + 3000),
            "no-nonce" => assert!(verifies && claims.get("nonce").is_none()),
            "azp-mismatch" => {
                assert!(verifies);
                assert_eq!(claims["aud"], serde_json::json!([CLIENT_ID, "other"]));
                assert_eq!(claims["azp"], "other");
            }
            other => bail!("mode {other} not checked"),
        }
        Ok(())
    }
}

#[tokio::test]
async fn every_id_token_mode_mutates_as_documented() -> anyhow::Result<()> {
    let idp = Idp::start(IdpOptions::new(BFF_ORIGIN)).await?;
    let browser = Browser::new()?;
    let before_rotation = jwks(&idp).await?;
    assert_eq!(before_rotation["keys"].as_array().map(Vec::len), Some(1));

    let modes = [
        "none",
        "bad-signature",
        "unknown-kid",
        "wrong-aud",
        "wrong-iss",
        "wrong-nonce",
        "expired",
        "future-iat",
        "no-nonce",
        "alg-none",
        "azp-mismatch",
        "rotated-key",
    ];
    for mode in modes {
        idp.set_id_token_mode(mode).await?;
        let (auth, tokens) = login_and_exchange(&browser, &idp, "bob").await?;
        let id_token = tokens["id_token"].as_str().context("id_token")?;
        let minted = Minted::read(&idp, &auth, id_token).await?;
        minted.check(mode, &idp, &before_rotation).await?;
    }
    assert!(idp.set_id_token_mode("no-such-mode").await.is_err());
    Ok(())
}

#[tokio::test]
async fn token_failures_stats_client_secret_post_and_abort() -> anyhow::Result<()> {
    let mut options = IdpOptions::new(BFF_ORIGIN);
    options.client_auth = ClientAuth::Post;
    options.always_refresh = true;
    let idp = Idp::start(options).await?;
    let browser = Browser::new()?;

    // Cancel on the login page: back to the client with access_denied.
    let auth = auth_request(&idp);
    let aborted = browser.abort_at_idp(&auth.url).await?;
    assert!(
        aborted
            .location()
            .is_some_and(|l| l.starts_with(&idp.redirect_uri()))
    );
    assert_eq!(
        aborted.location_param("error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        aborted.location_param("state").as_deref(),
        Some(auth.state.as_str())
    );

    let auth = auth_request(&idp);
    let code = login_for_code(&browser, &idp, &auth, "carol").await?;

    // Basic auth is refused for a client registered with client_secret_post.
    let (status, body) = exchange(&idp, &auth, &code, ClientAuth::Basic).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    idp.fail_token_requests(503).await?;
    let (status, body) = exchange(&idp, &auth, &code, ClientAuth::Post).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("server_error"))
    );

    idp.fail_token_requests(0).await?;
    idp.fail_next_token_requests(500, 1).await?;
    let (status, _) = exchange(&idp, &auth, &code, ClientAuth::Post).await?;
    assert_eq!(status, 500, "the one transient failure");
    let (status, tokens) = exchange(&idp, &auth, &code, ClientAuth::Post).await?;
    assert_eq!(status, 200, "{tokens}");
    let refresh_token = tokens["refresh_token"].as_str().context("refresh token")?;

    let revoked = reqwest::Client::new()
        .post(idp.url("/token/revocation"))
        .form(&[
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await?;
    assert_eq!(revoked.status(), 200);

    let stats = idp.stats().await?;
    assert_eq!(stats.token_requests, 4);
    assert_eq!(stats.revocations, 1);
    Ok(())
}

#[tokio::test]
async fn an_idp_that_cannot_start_reports_its_output() {
    let mut options = IdpOptions::new(BFF_ORIGIN);
    options
        .extra_env
        .push(("CLIENT_AUTH".to_owned(), "tls_client_auth".to_owned()));
    let Err(err) = Idp::start(options).await else {
        panic!("the IdP started with an unsupported CLIENT_AUTH");
    };
    let message = format!("{err:#}");
    assert!(
        message.contains("exited before printing READY"),
        "{message}"
    );
    assert!(message.contains("CLIENT_AUTH must be"), "{message}");
}
