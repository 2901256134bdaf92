//! Decoder configuration, sent from Python as JSON.

use serde::Deserialize;

use super::time::EpochUnit;

/// How input bytes become events. Every field has a default.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeConfig {
    /// `ndjson` (one JSON object per line) or `text` (one event per line).
    pub format: Format,
    /// Lines longer than this many bytes are dead-lettered as `line_too_long`.
    pub max_line_bytes: usize,
    /// JSON nested deeper than this is dead-lettered as `too_deep`.
    pub max_depth: usize,
    /// How bare epoch numbers are read; `auto` infers the unit from the magnitude.
    pub epoch_unit: EpochUnit,
    /// Dead-letter events whose timestamp cannot be read, instead of using `observed_at`.
    pub strict_timestamps: bool,
    /// Category for events that carry none.
    pub category: String,
    /// Service for events that carry none; `None` leaves the column null.
    pub service: Option<String>,
    /// Text format: a regex with named groups (`timestamp`, `level`, `message`, ...).
    pub parse: Option<String>,
    /// Text format: a strftime-style format for the `timestamp` group; `None` tries RFC 3339
    /// and epoch numbers.
    pub timestamp_format: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Ndjson,
    Text,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            format: Format::Ndjson,
            max_line_bytes: 1 << 20,
            max_depth: 64,
            epoch_unit: EpochUnit::Auto,
            strict_timestamps: false,
            category: "application.logs".to_owned(),
            service: None,
            parse: None,
            timestamp_format: None,
        }
    }
}
