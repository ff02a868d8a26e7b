//! The `kobling` binary: see the library for the commands.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    kobling_node::run(std::env::args_os())
}
