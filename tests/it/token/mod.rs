//! Token core: behaviour through the public API.

mod flows;
