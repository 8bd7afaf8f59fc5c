//! The `SecretSource` implementations: exec-based secret types, Vault, file, env and the built-in store. Filled by the secrets issue; this crate holds nothing yet.
