use std::fmt::Write as _;
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in a config file, located by byte span when it has a place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl Diagnostic {
    pub fn error(span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            span,
            message: message.into(),
        }
    }

    pub fn warning(span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            span,
            message: message.into(),
        }
    }

    /// `PATH:LINE:COL: error: message` (1-based line and column, columns in characters), or
    /// `PATH: error: message` for problems that have no place in the file.
    pub fn render(&self, path: &str, text: &str) -> String {
        let mut out = String::from(path);
        if let Some(span) = &self.span {
            let (line, col) = line_col(text, span.start);
            let _ = write!(out, ":{line}:{col}");
        }
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = write!(out, ": {kind}: {}", self.message);
        out
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_based_line_and_character_column() {
        let text = "a = 1\nbé = 2\n";
        let at = text.find('=').unwrap();
        let second = text[at + 1..].find('=').unwrap() + at + 1;
        let d = Diagnostic::error(Some(second..second + 1), "bad");
        assert_eq!(d.render("f.toml", text), "f.toml:2:4: error: bad");
        let d = Diagnostic::warning(None, "odd");
        assert_eq!(d.render("f.toml", text), "f.toml: warning: odd");
    }
}
