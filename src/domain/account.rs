//! Account fields: usernames, e-mail addresses and passwords.

use super::error::{AppError, AppResult};

/// A username: 3–32 of `[A-Za-z0-9_.-]`, unique case-insensitively.
#[derive(Debug, Clone)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> AppResult<Username> {
        let ok_len = (3..=32).contains(&raw.len());
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok_len && ok_chars {
            Ok(Username(raw.to_owned()))
        } else {
            Err(AppError::invalid(
                "username",
                "must be 3 to 32 characters of A-Z, a-z, 0-9, '_', '.' or '-'",
            ))
        }
    }
}

/// An email address, lower-cased. Deliberately simple: one `@`, a non-empty
/// local part, a dotted domain, no spaces or control characters.
#[derive(Debug, Clone)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> AppResult<Email> {
        let bad = || AppError::invalid("email", "must be a valid email address");
        if raw.is_empty() {
            return Err(AppError::invalid("email", "is required"));
        }
        if raw.len() > 254 {
            return Err(bad());
        }
        // The limits hold for the stored, lower-cased form as well as for
        // what was sent: lower-casing changes the byte length of some
        // letters ('Ⱥ' is 2 bytes, 'ⱥ' 3), and a stored address must parse
        // back to itself.
        let lower = raw.to_lowercase();
        if lower.len() > 254 || lower.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = lower.split_once('@').ok_or_else(bad)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(bad());
        }
        Ok(Email(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A password: 8–128 bytes.
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> AppResult<Password> {
        if (8..=128).contains(&raw.len()) {
            Ok(Password(raw.to_owned()))
        } else {
            Err(AppError::invalid("password", "must be 8 to 128 bytes"))
        }
    }
}

impl Username {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl Password {
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["abc", "a.b-c_d", &"x".repeat(32), "ABC123"] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "ab", &"x".repeat(33), "a b", "ümlaut", "a/b", "a\0b"] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            Email::parse("Alice@Example.COM").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in [
            "", "a", "a@", "@b.c", "a@b", "a@@b.c", "a b@c.d", "a@b..c", "a@.b.c",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn email_limits_hold_for_the_lowercased_form() {
        // 'Ⱥ' (2 bytes) lower-cases to 'ⱥ' (3 bytes): 32 of them make a
        // 64-byte local part that would be stored as 96 bytes.
        let grows = format!("{}@example.com", "Ⱥ".repeat(32));
        assert_eq!(grows.split_once('@').unwrap().0.len(), 64);
        assert!(Email::parse(&grows).is_err());
        // Whatever is accepted is stored in a form that parses to itself.
        for ok in ["ⱥ@example.com", "Straße@Example.de", "KELVIN\u{212a}@b.c"] {
            let stored = Email::parse(ok).unwrap();
            let again = Email::parse(stored.as_str()).unwrap();
            assert_eq!(again.as_str(), stored.as_str(), "{ok:?}");
        }
    }

    #[test]
    fn password_bounds_are_bytes() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"p".repeat(128)).is_ok());
        assert!(Password::parse(&"p".repeat(129)).is_err());
        // 4 characters, 16 bytes.
        assert!(Password::parse("😀😀😀😀").is_ok());
    }
}
