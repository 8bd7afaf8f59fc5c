//! The `Store` implementations on sea-orm (mem, sqlite, postgres, mysql/mariadb). Filled by the storage issue; this crate holds nothing yet.
