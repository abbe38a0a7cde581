//! `kiln schema`: print the spec's JSON Schema.

use std::io::Write;

/// Print the JSON Schema of the spec (for editors and CI).
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  kiln schema > kiln-spec.schema.json")]
pub(crate) struct SchemaArgs {}

impl SchemaArgs {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        std::io::stdout().write_all(kiln_pipeline::schema_json().as_bytes())?;
        Ok(())
    }
}
