//! Syslog as our storage: [`sink`] writes records (with [`header`]s, through the system
//! calls of `sys`, or over [`relp`]); [`source`] reads lines back for the read engine
//! ([`crate::records`]), [`line`] parses each line and [`clock`] dates it. [`system`] finds
//! what `auto` means on this machine.

pub mod clock;
pub mod header;
pub mod line;
pub mod relp;
pub mod sink;
pub mod source;
mod sys;
pub mod system;
