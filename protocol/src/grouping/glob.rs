//! Glob patterns of Sentry's grouping rules: `*` (within a path segment for paths), `**` (any
//! number of segments), `?`, `[...]` classes and `\` escapes; compiled to an anchored regex.

use regex::Regex;

#[derive(Debug, Clone)]
pub(crate) struct Glob {
    regex: Regex,
}

impl Glob {
    /// `path_like`: `*` and `?` stop at `/`, `**/` also matches nothing. `ignore_case`: letters
    /// match either case.
    pub(crate) fn new(pattern: &str, path_like: bool, ignore_case: bool) -> Result<Self, String> {
        let mut re = String::with_capacity(pattern.len() * 2 + 8);
        re.push_str(if ignore_case { "(?is)^" } else { "(?s)^" });
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' if chars.get(i + 1) == Some(&'*') => {
                    i += 1;
                    if chars.get(i + 1) == Some(&'/') {
                        i += 1;
                        re.push_str("(?:.*/)?");
                    } else {
                        re.push_str(".*");
                    }
                }
                '*' => re.push_str(if path_like { "[^/]*" } else { ".*" }),
                '?' => re.push_str(if path_like { "[^/]" } else { "." }),
                '\\' => {
                    i += 1;
                    if let Some(c) = chars.get(i) {
                        re.push_str(&regex::escape(&c.to_string()));
                    }
                }
                '[' => {
                    let close = chars[i + 1..]
                        .iter()
                        .enumerate()
                        .skip(1)
                        .find(|(_, c)| **c == ']')
                        .map(|(at, _)| i + 1 + at);
                    let Some(close) = close else {
                        return Err(format!("unclosed `[` in pattern `{pattern}`"));
                    };
                    re.push('[');
                    let mut j = i + 1;
                    if chars[j] == '!' {
                        re.push('^');
                        j += 1;
                    }
                    for c in &chars[j..close] {
                        if matches!(c, '\\' | '[' | ']' | '&' | '~' | '^') {
                            re.push('\\');
                        }
                        re.push(*c);
                    }
                    re.push(']');
                    i = close;
                }
                c => re.push_str(&regex::escape(&c.to_string())),
            }
            i += 1;
        }
        re.push('$');
        Regex::new(&re)
            .map(|regex| Self { regex })
            .map_err(|e| format!("invalid pattern `{pattern}`: {e}"))
    }

    pub(crate) fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }

    /// The regex the glob compiled to.
    pub(crate) fn regex(&self) -> &str {
        self.regex.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn paths_and_names() {
        let g = Glob::new("**/node_modules/**", true, true).unwrap();
        assert!(g.is_match("/app/node_modules/react/index.js"));
        assert!(g.is_match("node_modules/react/index.js"));
        assert!(!g.is_match("/app/src/index.js"));
        let g = Glob::new("/usr/lib/*", true, true).unwrap();
        assert!(g.is_match("/usr/lib/libc.so"));
        assert!(!g.is_match("/usr/lib/x/libc.so"));
        let g = Glob::new("std::*", false, false).unwrap();
        assert!(g.is_match("std::panicking::begin_panic"));
        let g = Glob::new("?[[]KSCrash*", false, false).unwrap();
        assert!(g.is_match("-[KSCrash install]"));
        let g = Glob::new(r"-\[NSISEngine*", false, false).unwrap();
        assert!(g.is_match("-[NSISEngine solve]"));
        assert!(Glob::new("[abc", false, false).is_err());
    }
}
