//! Sessions: the record kept server-side, its cookie, sealing and the manager that loads,
//! creates, slides and deletes them.

pub mod keyring;
pub mod random;
pub mod seal;
