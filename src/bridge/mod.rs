//! `iotitan-bridge`: forwarding readings to ThingSpeak.

pub mod batch;
pub mod key;
pub mod spool;
pub mod thingspeak;
