//! Command lines split into arguments (`["curl", "-u", "bob:pw"]`, OpenTelemetry's
//! `process.command_args`): a few clients take a password after a short flag that names no
//! secret by itself, so the client is known by its program name first.

/// A client whose password flag is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// `-u user:password`, `--user user:password` or `-uuser:password`.
    Curl,
    /// `-p password` or `-ppassword`, among sshpass's own flags before the wrapped command.
    Sshpass,
    /// `-a password` (`--pass` names a secret key by itself).
    RedisCli,
    /// `-ppassword`; `-p` alone prompts.
    Mysql,
}

/// MySQL and MariaDB clients, as `MYSQL_P` names them in text.
pub const MYSQL_CLIENTS: &[&str] = &[
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mysqlimport",
    "mysqlcheck",
    "mysqlshow",
    "mariadb",
    "mariadb-dump",
];

/// What one argument after a client's name says about its password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    Plain,
    /// The next argument is the password.
    NextPassword,
    /// The next argument is `user:password`.
    NextCredential,
    /// The password is glued to the flag and starts at this byte.
    GluedPassword(usize),
    /// `user:password` is glued to the flag and starts at this byte.
    GluedCredential(usize),
    /// The client's own flags end here (sshpass: the wrapped command starts).
    End,
}

impl Client {
    /// The client an argument names (`curl`, `/usr/bin/mysql`, `curl.exe`), if any.
    pub fn named(arg: &str) -> Option<Client> {
        let file = arg.rsplit(['/', '\\']).next().unwrap_or(arg);
        match file.strip_suffix(".exe").unwrap_or(file) {
            "curl" => Some(Client::Curl),
            "sshpass" => Some(Client::Sshpass),
            "redis-cli" => Some(Client::RedisCli),
            name if MYSQL_CLIENTS.contains(&name) => Some(Client::Mysql),
            _ => None,
        }
    }

    /// What `arg`, an argument after this client's name, says.
    pub fn read(self, arg: &str) -> Arg {
        let glued =
            |flag: &str| (arg.len() > flag.len() && arg.starts_with(flag)).then_some(flag.len());
        match self {
            Client::Curl if arg == "-u" || arg == "--user" => Arg::NextCredential,
            Client::Curl => glued("-u").map_or(Arg::Plain, Arg::GluedCredential),
            Client::Sshpass if arg == "-p" => Arg::NextPassword,
            Client::Sshpass if arg.starts_with('-') => {
                glued("-p").map_or(Arg::Plain, Arg::GluedPassword)
            }
            Client::Sshpass => Arg::End,
            Client::RedisCli if arg == "-a" => Arg::NextPassword,
            Client::RedisCli => Arg::Plain,
            Client::Mysql => glued("-p").map_or(Arg::Plain, Arg::GluedPassword),
        }
    }
}
