//! Output for people and scripts: a table of chosen columns, or the JSON as the CO sent it.

use clap::ValueEnum;
use serde_json::Value;

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum Output {
    Table,
    Json,
}

/// Prints `value` (one object or a list) as a table of `columns`, or as pretty JSON.
pub fn print(out: Output, value: &Value, columns: &[&str]) -> anyhow::Result<()> {
    if out == Output::Json {
        println!("{}", serde_json::to_string_pretty(value)?);
        return Ok(());
    }
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let cell = |row: &Value, c: &str| match &row[c] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| {
            rows.iter()
                .map(|r| cell(r, c).len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!(
        "{}",
        line(columns.iter().map(|c| c.to_uppercase()).collect())
    );
    for r in rows {
        println!("{}", line(columns.iter().map(|c| cell(r, c)).collect()));
    }
    Ok(())
}
