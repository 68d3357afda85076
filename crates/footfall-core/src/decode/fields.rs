//! Reading typed, bounded fields out of a JSON object, with errors that name the field.

use super::DecodeError;
use serde_json::{Map, Value};

pub(crate) struct Fields<'a> {
    obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(value: &'a Value) -> Result<Self, DecodeError> {
        match value {
            Value::Object(obj) => Ok(Fields { obj }),
            _ => Err(DecodeError::NotAnObject("object")),
        }
    }

    /// The first of `names` present and not null, with the name it was found under.
    fn get(&self, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
        names
            .iter()
            .find_map(|n| self.obj.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))
    }

    pub(crate) fn string(
        &self,
        names: &[&'static str],
        max: usize,
    ) -> Result<Option<String>, DecodeError> {
        match self.get(names) {
            None => Ok(None),
            Some((name, Value::String(s))) => {
                if s.chars().count() > max {
                    Err(DecodeError::TooLong {
                        field: name.into(),
                        max,
                    })
                } else {
                    Ok(Some(s.clone()))
                }
            }
            Some((name, _)) => Err(DecodeError::WrongType {
                field: name.into(),
                expected: "a string",
            }),
        }
    }

    pub(crate) fn required_string(
        &self,
        names: &[&'static str],
        max: usize,
    ) -> Result<String, DecodeError> {
        match self.string(names, max)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(DecodeError::Invalid {
                field: names[0].into(),
                reason: "must not be empty".into(),
            }),
            None => Err(DecodeError::Missing(names[0])),
        }
    }

    /// Booleans as Plausible's trackers send them: `true`/`false` or `1`/`0`.
    pub(crate) fn boolean(&self, names: &[&'static str]) -> Result<Option<bool>, DecodeError> {
        match self.get(names) {
            None => Ok(None),
            Some((_, Value::Bool(b))) => Ok(Some(*b)),
            Some((_, Value::Number(n))) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
                Ok(Some(n.as_i64() == Some(1)))
            }
            Some((name, _)) => Err(DecodeError::WrongType {
                field: name.into(),
                expected: "a boolean",
            }),
        }
    }

    pub(crate) fn number(&self, names: &[&'static str]) -> Result<Option<f64>, DecodeError> {
        match self.get(names) {
            None => Ok(None),
            Some((name, Value::Number(n))) => {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(Some)
                    .ok_or(DecodeError::WrongType {
                        field: name.into(),
                        expected: "a finite number",
                    })
            }
            Some((name, _)) => Err(DecodeError::WrongType {
                field: name.into(),
                expected: "a number",
            }),
        }
    }

    /// A number within `[min, max]`.
    pub(crate) fn bounded(
        &self,
        names: &[&'static str],
        min: f64,
        max: f64,
    ) -> Result<Option<f64>, DecodeError> {
        match self.number(names)? {
            Some(v) if v < min || v > max => {
                let name = self.get(names).map(|(n, _)| n).unwrap_or(names[0]);
                Err(DecodeError::Invalid {
                    field: name.into(),
                    reason: format!("must be between {min} and {max}"),
                })
            }
            other => Ok(other),
        }
    }

    pub(crate) fn raw(&self, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
        self.get(names)
    }
}
