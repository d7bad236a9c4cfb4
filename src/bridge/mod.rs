//! `iotitan-bridge`: forwarding readings to ThingSpeak.

pub mod batch;
