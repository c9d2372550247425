//! The UserInfo endpoint: the claims it returns, as they came, for merging into the login's
//! claims.

use openidconnect::core::{CoreClient, CoreGenderClaim, CoreJsonWebKeySet};
use openidconnect::{AccessToken, AdditionalClaims, ClientId, UserInfoClaims, UserInfoError};
use serde_json::{Map, Value};
use tracing::Instrument as _;

use super::discovery::ProviderMetadata;
use super::dpop::ProofHttp;
use super::http::HttpError;
use crate::secret::SecretString;

/// The userinfo claims, for a plain or a signed answer (a signed one is checked against
/// `keys`); the error is a summary safe to log.
pub(crate) async fn fetch(
    metadata: &ProviderMetadata,
    keys: &CoreJsonWebKeySet,
    client_id: &ClientId,
    http: &ProofHttp<'_>,
    access_token: &SecretString,
) -> Result<Map<String, Value>, String> {
    let _timer = crate::telemetry::metrics::idp_timer("userinfo");
    let metadata = metadata.clone().set_jwks(keys.clone());
    let client = CoreClient::from_provider_metadata(metadata, client_id.clone(), None);
    let request = client
        .user_info(AccessToken::new(access_token.expose().to_owned()), None)
        .map_err(|err| err.to_string())?;
    let claims: UserInfoClaims<AllClaims, CoreGenderClaim> = request
        .request_async(http)
        .instrument(crate::telemetry::spans::idp("idp userinfo"))
        .await
        .map_err(|err| summary(&err))?;
    match serde_json::to_value(&claims) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err("userinfo claims are not an object".to_owned()),
    }
}

/// Userinfo claims beyond the standard ones, kept as they came.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
struct AllClaims {
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl AdditionalClaims for AllClaims {}

/// A userinfo failure without the response body (it holds personal data).
fn summary(err: &UserInfoError<HttpError>) -> String {
    match err {
        UserInfoError::ClaimsVerification(err) => err.to_string(),
        UserInfoError::Parse(err) => format!("malformed userinfo at `{}`", err.path()),
        UserInfoError::Request(err) => err.to_string(),
        UserInfoError::Response(status, _, _) => format!("userinfo answered HTTP {status}"),
        UserInfoError::Other(text) => text.clone(),
        _ => "userinfo failed".to_owned(),
    }
}
