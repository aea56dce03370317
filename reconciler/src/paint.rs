//! ANSI styling for every text renderer (findings, plans, test runs, explanations): a no-op
//! when colour is off. Whether it is on is the CLI's decision (anstream's rules).

/// Red.
pub const RED: &str = "\x1b[31m";
/// Green.
pub const GREEN: &str = "\x1b[32m";
/// Yellow.
pub const YELLOW: &str = "\x1b[33m";
/// Cyan.
pub const CYAN: &str = "\x1b[36m";
/// Bold.
pub const BOLD: &str = "\x1b[1m";
/// Dim.
pub const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Styling on (`Paint(true)`) or off.
pub struct Paint(pub bool);

impl Paint {
    /// `s` in `style`, or `s` as it is without colour.
    pub fn on(&self, style: &str, s: &str) -> String {
        if self.0 {
            format!("{style}{s}{RESET}")
        } else {
            s.to_owned()
        }
    }
}
