//! Bad input to the HTTP API.
