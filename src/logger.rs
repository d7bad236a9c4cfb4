//! `iotitan-logger`: every MQTT message into syslog.
