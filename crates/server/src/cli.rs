//! The command line: parsing, exit codes, and errors told in full.

/// EX_USAGE (sysexits.h): the command line or environment is wrong; nothing was started.
pub const EXIT_USAGE: u8 = 64;

/// Parses the command line and environment into `C`. `--help` and `--version` print and end
/// with 0; a bad flag or value prints why and ends with [`EXIT_USAGE`], before anything has
/// started. A `main` returns the `Err` as its exit code.
pub fn parse_args<C: clap::Parser>() -> Result<C, std::process::ExitCode> {
    C::try_parse().map_err(|error| {
        let _ = error.print(); // help and version go to stdout, errors to stderr
        if error.use_stderr() {
            std::process::ExitCode::from(EXIT_USAGE)
        } else {
            std::process::ExitCode::SUCCESS
        }
    })
}

/// `error` and each of its sources, joined by `: `: tonic's and rustls's errors say little at
/// the top and what was refused further down.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The flags of `command` (and of its subcommands) whose help is not one line: missing, over
/// 100 characters, on several lines, or with a longer `--help` text. `--help` says what each
/// flag is; why it is set as it is belongs in the docs and in the code beside it.
pub fn wordy_flags(command: &clap::Command) -> Vec<String> {
    let mut wordy: Vec<String> = command
        .get_arguments()
        .filter(|arg| !arg.is_hide_set())
        .filter_map(|arg| {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let one_line = !help.is_empty()
                && help.len() <= 100
                && !help.contains('\n')
                && arg.get_long_help().is_none();
            (!one_line).then(|| format!("{} --{}: {help:?}", command.get_name(), arg.get_id()))
        })
        .collect();
    for subcommand in command.get_subcommands() {
        wordy.extend(wordy_flags(subcommand));
    }
    wordy
}

/// The flags of `command` as Markdown tables, one per help heading: flag, environment
/// variable, default and the one-line help. docs/configuration.md holds one such section per
/// binary, checked by [`reference_is_current`].
pub fn flags_markdown(command: &clap::Command) -> String {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for arg in command.get_arguments().filter(|arg| !arg.is_hide_set()) {
        let Some(long) = arg.get_long() else {
            continue;
        };
        if matches!(long, "help" | "version") {
            continue;
        }
        let takes_value = arg.get_action().takes_values();
        let flag = if takes_value {
            let value = arg
                .get_value_names()
                .and_then(|names| names.first())
                .map_or_else(|| arg.get_id().as_str().to_uppercase(), ToString::to_string);
            format!("`--{long} <{value}>`")
        } else {
            format!("`--{long}`")
        };
        let env = arg
            .get_env()
            .map_or_else(String::new, |env| format!("`{}`", env.to_string_lossy()));
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|value| value.to_string_lossy().into_owned())
            .collect();
        let default = if defaults.is_empty() || !takes_value {
            String::new()
        } else {
            format!("`{}`", defaults.join(","))
        };
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        let row = format!(
            "| {flag} | {env} | {default} | {} |",
            help.replace('|', "\\|")
        );
        let heading = arg.get_help_heading().unwrap_or("Options").to_owned();
        match sections.iter_mut().find(|(name, _)| *name == heading) {
            Some((_, rows)) => rows.push(row),
            None => sections.push((heading, vec![row])),
        }
    }
    let mut out = String::new();
    for (heading, rows) in sections {
        out.push_str(&format!(
            "**{heading}**\n\n| flag | variable | default | what |\n|---|---|---|---|\n"
        ));
        for row in rows {
            out.push_str(&row);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// Whether the section `<!-- flags:NAME -->` … `<!-- flags:end -->` of the Markdown file at
/// `path` is [`flags_markdown`] of `command`; with `STORMPROOF_WRITE_DOCS=1` set, rewrites it
/// first. `Err` says what differs.
pub fn reference_is_current(path: &std::path::Path, command: &clap::Command) -> Result<(), String> {
    let name = command.get_name();
    let begin = format!("<!-- flags:{name} -->\n");
    let end = "<!-- flags:end -->";
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let start = text
        .find(&begin)
        .map(|at| at + begin.len())
        .ok_or_else(|| format!("{} has no `{}`", path.display(), begin.trim()))?;
    let stop = text[start..]
        .find(end)
        .map(|at| start + at)
        .ok_or_else(|| format!("{} has no `{end}` after `{}`", path.display(), begin.trim()))?;
    let current = flags_markdown(command);
    if text[start..stop] == current {
        return Ok(());
    }
    if std::env::var_os("STORMPROOF_WRITE_DOCS").is_some() {
        let updated = format!("{}{current}{}", &text[..start], &text[stop..]);
        return std::fs::write(path, updated).map_err(|error| error.to_string());
    }
    Err(format!(
        "the {name} flags in {} are stale: rerun this test with STORMPROOF_WRITE_DOCS=1",
        path.display()
    ))
}

/// Both checks of a binary's flags: each explained in one line ([`wordy_flags`]), and each in
/// the Markdown reference at `docs` ([`reference_is_current`]). A binary's test calls it.
pub fn flags_are_documented(command: &clap::Command, docs: &std::path::Path) -> Result<(), String> {
    let wordy = wordy_flags(command);
    if !wordy.is_empty() {
        return Err(format!("these flags need a one-line help: {wordy:#?}"));
    }
    reference_is_current(docs, command)
}

#[cfg(test)]
mod tests {
    use clap::{Arg, Command};

    use super::wordy_flags;

    #[test]
    fn a_flag_of_more_than_one_line_is_named() {
        let command = Command::new("svc")
            .arg(Arg::new("short").long("short").help("One line."))
            .arg(Arg::new("none").long("none"))
            .arg(
                Arg::new("lines")
                    .long("lines")
                    .help("One line,\nthen another."),
            )
            .arg(
                Arg::new("long")
                    .long("long")
                    .help("One line.")
                    .long_help("And a paragraph."),
            )
            .arg(Arg::new("hidden").long("hidden").hide(true))
            .subcommand(Command::new("sub").arg(Arg::new("deep").long("deep")));
        let wordy: Vec<String> = wordy_flags(&command)
            .into_iter()
            .map(|flag| flag.split(':').next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            wordy,
            ["svc --none", "svc --lines", "svc --long", "sub --deep"]
        );
    }
}
