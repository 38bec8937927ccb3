//! The `dashboard-mcp` binary: everything lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    dashboard_mcp::cli::main()
}
