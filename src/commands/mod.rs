//! One module per `skiff` subcommand.

pub mod server;
