//! Subcommands that have grown beyond a few lines of flag handling, one file each.

pub mod args;
pub mod policy;
pub mod validate;
