//! The template engine every renderer uses (units and configs in `builder`, kickstarts,
//! cloud-init and PXE configs in `kickstart`): minijinja in strict mode — an undefined
//! variable is an error, nothing is HTML-escaped, a template's trailing newline is kept, and
//! block tags do not leave blank lines. Code builds the data; templates only lay it out.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

/// A template failed to load or render (a bug in kiln, never in the spec).
#[derive(Debug, thiserror::Error)]
#[error("rendering template {name}: {source:#}")]
pub struct TemplateError {
    pub name: String,
    #[source]
    pub source: minijinja::Error,
}

/// A compiled set of templates.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Compiles `(name, source)` pairs.
    pub fn new(templates: &[(&'static str, &'static str)]) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        for (name, src) in templates {
            env.add_template(name, src)
                .map_err(|source| TemplateError {
                    name: name.to_string(),
                    source,
                })?;
        }
        Ok(Templates { env })
    }

    /// Renders template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, TemplateError> {
        let err = |source| TemplateError {
            name: name.to_string(),
            source,
        };
        self.env
            .get_template(name)
            .map_err(err)?
            .render(ctx)
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_and_unescaped() {
        let t = Templates::new(&[("t", "{{ a }} <{{ b }}>\n")]).unwrap();
        assert!(t.render("t", minijinja::context! { a => 1 }).is_err());
        assert_eq!(
            t.render("t", minijinja::context! { a => "&", b => "x" })
                .unwrap(),
            "& <x>\n"
        );
    }
}
