//! `scarab auth ...`: who the client is, and users, roles and tokens (with `auth:admin`).

use clap::Subcommand;
use comfy_table::Table;

use scarab_client::types::auth::{CreateToken, Permission, Role, TokenInfo, User};

use super::ClientOpts;
use super::output::{cell, print_json, print_rows};

#[derive(Subcommand)]
pub enum AuthCmd {
    /// The principal the client is (from --token), its roles and permissions.
    Whoami {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Users: principals with roles.
    #[command(subcommand)]
    User(UserCmd),
    /// Roles: named lists of permissions.
    #[command(subcommand)]
    Role(RoleCmd),
    /// Tokens: bearer credentials of a user.
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a user (or replace its roles).
    Create {
        name: String,
        /// A role to grant (repeatable; `admin` is built in).
        #[arg(long = "role")]
        roles: Vec<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    List {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Grant a role to a user.
    Grant {
        name: String,
        role: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Revoke a role from a user.
    Revoke {
        name: String,
        role: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Delete a user and every token of theirs.
    Delete {
        name: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

#[derive(Subcommand)]
pub enum RoleCmd {
    /// Create a role (or replace its permissions).
    Create {
        name: String,
        /// A permission: `config:read:PREFIX`, `config:write:PREFIX`, `config:delete:PREFIX`,
        /// `schema:read|register|delete|migrate:NAME` (or `:*`), `audit:read:PREFIX`,
        /// `cluster:admin`, `auth:admin`, `auth:impersonate` (repeatable).
        #[arg(long = "permission", short = 'p')]
        permissions: Vec<Permission>,
        /// Template: read configs under PREFIX, and every schema.
        #[arg(long)]
        reader: Option<String>,
        /// Template: read, write and delete configs under PREFIX, and read every schema.
        #[arg(long)]
        writer: Option<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    List {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Add a permission to a role.
    Grant {
        name: String,
        permission: Permission,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Remove a permission from a role.
    Revoke {
        name: String,
        permission: Permission,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Delete a role no user holds.
    Delete {
        name: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token for a user and print it: it is shown this once.
    Create {
        /// The user the token authenticates as (default: yourself).
        #[arg(long)]
        user: Option<String>,
        /// How long it is valid (`12h`, `30d`); default: until revoked.
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Tokens' metadata (never their secrets): every token with auth:admin, else yours.
    List {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Revoke a token by its id: refused on every node once the revocation is applied.
    Revoke {
        id: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

pub async fn run(cmd: AuthCmd) -> anyhow::Result<()> {
    match cmd {
        AuthCmd::Whoami { opts } => {
            let me = opts.client()?.whoami().await?;
            if opts.output.structured() {
                print_json(&me);
            } else {
                print_rows(&[
                    ("principal", me.principal.clone()),
                    ("authenticated by", me.authenticated_by.clone()),
                    ("token", cell(me.token_id.as_ref())),
                    ("roles", me.roles.join(", ")),
                    (
                        "permissions",
                        me.permissions
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                ]);
            }
        }
        AuthCmd::User(cmd) => user(cmd).await?,
        AuthCmd::Role(cmd) => role(cmd).await?,
        AuthCmd::Token(cmd) => token(cmd).await?,
    }
    Ok(())
}

fn print_users(opts: &ClientOpts, users: &[User]) {
    if opts.output.structured() {
        return print_json(users);
    }
    let mut t = Table::new();
    t.set_header(["USER", "ROLES", "CREATED", "BY"]);
    for u in users {
        t.add_row([
            u.name.clone(),
            u.roles.join(", "),
            u.created_at.clone(),
            u.created_by.clone(),
        ]);
    }
    println!("{t}");
}

async fn user(cmd: UserCmd) -> anyhow::Result<()> {
    let (opts, users) = match cmd {
        UserCmd::Create { name, roles, opts } => {
            let u = opts.client()?.put_user(&name, &roles).await?;
            (opts, vec![u])
        }
        UserCmd::List { opts } => {
            let users = opts.client()?.users().await?;
            (opts, users)
        }
        UserCmd::Grant { name, role, opts } => {
            let u = opts.client()?.grant_role(&name, &role).await?;
            (opts, vec![u])
        }
        UserCmd::Revoke { name, role, opts } => {
            let u = opts.client()?.revoke_role(&name, &role).await?;
            (opts, vec![u])
        }
        UserCmd::Delete { name, opts } => {
            opts.client()?.delete_user(&name).await?;
            eprintln!("deleted user {name} and its tokens");
            return Ok(());
        }
    };
    print_users(&opts, &users);
    Ok(())
}

fn print_roles(opts: &ClientOpts, roles: &[Role]) {
    if opts.output.structured() {
        return print_json(roles);
    }
    let mut t = Table::new();
    t.set_header(["ROLE", "PERMISSIONS"]);
    for r in roles {
        let perms: Vec<String> = r.permissions.iter().map(ToString::to_string).collect();
        let name = if r.builtin {
            format!("{} (built in)", r.name)
        } else {
            r.name.clone()
        };
        t.add_row([name, perms.join("\n")]);
    }
    println!("{t}");
}

async fn role(cmd: RoleCmd) -> anyhow::Result<()> {
    let (opts, roles) = match cmd {
        RoleCmd::Create {
            name,
            mut permissions,
            reader,
            writer,
            opts,
        } => {
            if let Some(p) = reader {
                permissions.extend(Permission::reader(&p));
            }
            if let Some(p) = writer {
                permissions.extend(Permission::writer(&p));
            }
            if permissions.is_empty() {
                anyhow::bail!("a role needs a permission: --permission, --reader or --writer");
            }
            let r = opts.client()?.put_role(&name, &permissions).await?;
            (opts, vec![r])
        }
        RoleCmd::List { opts } => {
            let roles = opts.client()?.roles().await?;
            (opts, roles)
        }
        RoleCmd::Grant {
            name,
            permission,
            opts,
        } => {
            let client = opts.client()?;
            let mut permissions = client.role(&name).await?.permissions;
            permissions.push(permission);
            let r = client.put_role(&name, &permissions).await?;
            (opts, vec![r])
        }
        RoleCmd::Revoke {
            name,
            permission,
            opts,
        } => {
            let client = opts.client()?;
            let mut permissions = client.role(&name).await?.permissions;
            let before = permissions.len();
            permissions.retain(|p| *p != permission);
            if permissions.len() == before {
                anyhow::bail!("role {name} does not hold {permission}");
            }
            let r = client.put_role(&name, &permissions).await?;
            (opts, vec![r])
        }
        RoleCmd::Delete { name, opts } => {
            opts.client()?.delete_role(&name).await?;
            eprintln!("deleted role {name}");
            return Ok(());
        }
    };
    print_roles(&opts, &roles);
    Ok(())
}

fn print_tokens(opts: &ClientOpts, tokens: &[TokenInfo]) {
    if opts.output.structured() {
        return print_json(tokens);
    }
    let mut t = Table::new();
    t.set_header(["ID", "USER", "CREATED", "BY", "EXPIRES", "DESCRIPTION"]);
    for k in tokens {
        t.add_row([
            k.id.clone(),
            k.principal.clone(),
            k.created_at.clone(),
            k.created_by.clone(),
            k.expires_at.clone().unwrap_or_else(|| "never".into()),
            k.description.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
}

async fn token(cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Create {
            user,
            ttl,
            description,
            opts,
        } => {
            let client = opts.client()?;
            let principal = match user {
                Some(u) => u,
                None => client.whoami().await?.principal,
            };
            let created = client
                .create_token(&CreateToken {
                    principal,
                    ttl,
                    description,
                })
                .await?;
            if opts.output.structured() {
                print_json(&created);
            } else {
                // The token alone on stdout (for `$(scarab auth token create ...)`); what it
                // is on stderr.
                eprintln!(
                    "token {} for {} (expires: {}); it is not shown again",
                    created.info.id,
                    created.info.principal,
                    created.info.expires_at.as_deref().unwrap_or("never")
                );
                println!("{}", created.token);
            }
        }
        TokenCmd::List { opts } => {
            let tokens = opts.client()?.tokens().await?;
            print_tokens(&opts, &tokens);
        }
        TokenCmd::Revoke { id, opts } => {
            opts.client()?.revoke_token(&id).await?;
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}
