//! One module per subcommand: its argument struct (doc comment, `after_help`, arguments) and
//! its `run`.

pub(crate) mod boot;
pub(crate) mod build;
pub(crate) mod cache;
pub(crate) mod check;
pub(crate) mod fetch;
pub(crate) mod init;
pub(crate) mod keys;
pub(crate) mod lock;
pub(crate) mod push;
pub(crate) mod render;
pub(crate) mod schema;
pub(crate) mod serve;
