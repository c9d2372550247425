//! The `/bff` endpoints of SPEC §2, one file each.

mod backchannel;
mod callback;
mod client_js;
mod login;
mod logout;
mod password;
mod user;

pub use backchannel::backchannel_logout;
pub use callback::callback;
pub use client_js::client_js;
pub use login::login;
pub use logout::logout;
pub use password::{login_password, warn_password_grant};
pub use user::user;

/// Response extension: the session's log id, picked up by the access log.
#[derive(Debug, Clone)]
pub struct SessionLogId(pub String);
