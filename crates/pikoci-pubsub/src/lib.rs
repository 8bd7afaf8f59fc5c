//! The `Broker` implementations (mem, NATS, RabbitMQ, Kafka behind the `kafka` feature). Filled by the message-broker issue; this crate holds nothing yet.
