//! `iotitan-bridge`: forwarding readings to ThingSpeak (to be built).
