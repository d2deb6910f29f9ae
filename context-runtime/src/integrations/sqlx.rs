//! PostgreSQL transactions that carry the current tenant into row-level
//! security (feature `sqlx`).
//!
//! [`begin`] opens a transaction and, before anything else runs in it, binds
//! the current scope's tenant with
//! `select set_config('app.current_tenant', $1, true)`. Row-level security
//! policies that compare each row's tenant with
//! `current_setting('app.current_tenant', true)` then filter every query in
//! the transaction, including one that forgets its `where tenant_id = …`.
//! Without a tenant in scope, [`begin`] returns [`Error::TenantRequired`]
//! before it takes a connection: no query runs at all.
//!
//! The setting is transaction-local (`is_local = true`): it ends with the
//! transaction, on commit, rollback or drop, so a pooled connection reused
//! afterwards, by another tenant or by none, never sees it. (It also works
//! behind a pooler in transaction mode.)
//!
//! ```no_run
//! use context_runtime::sqlx as postgres; // `sqlx` would shadow the sqlx crate
//! use context_runtime::{requires_tenant, with_context, Carrier};
//! use sqlx::PgPool;
//!
//! #[derive(Debug)]
//! enum JobError { Db(postgres::Error), Carrier(context_runtime::CarrierError), NoTenant }
//! impl From<postgres::Error> for JobError { fn from(e: postgres::Error) -> Self { JobError::Db(e) } }
//! impl From<sqlx::Error> for JobError { fn from(e: sqlx::Error) -> Self { JobError::Db(e.into()) } }
//! impl From<context_runtime::CarrierError> for JobError { fn from(e: context_runtime::CarrierError) -> Self { JobError::Carrier(e) } }
//! impl From<context_runtime::TenantRequired> for JobError { fn from(_: context_runtime::TenantRequired) -> Self { JobError::NoTenant } }
//!
//! #[with_context(from = "ctx")]
//! #[requires_tenant]
//! async fn close_month(pool: &PgPool, ctx: Carrier) -> Result<u64, JobError> {
//!     let mut tx = postgres::begin(pool).await?;
//!     // No tenant filter: row-level security only lets this tenant's rows through.
//!     let closed = sqlx::query("update invoices set status = 'closed' where status = 'open'")
//!         .execute(&mut *tx)
//!         .await?
//!         .rows_affected();
//!     tx.commit().await?;
//!     Ok(closed)
//! }
//! ```
//!
//! # The schema side
//!
//! Policies apply only to roles that neither own the table nor are
//! superusers (nor have `BYPASSRLS`): the application must connect as such a
//! role. `current_setting(…, true)` is `NULL` on a connection that never set
//! it and `''` after a transaction that did, and neither equals a tenant id,
//! so a query without a bound tenant sees no rows and can write none.
//!
//! ```sql
//! create table invoices (
//!     id        bigserial primary key,
//!     tenant_id text not null default current_setting('app.current_tenant', true),
//!     status    text not null
//! );
//! alter table invoices enable row level security;
//! create policy tenant_isolation on invoices
//!     using (tenant_id = current_setting('app.current_tenant', true))
//!     with check (tenant_id = current_setting('app.current_tenant', true));
//! create role app login;  -- not the owner, not a superuser
//! grant select, insert, update, delete on invoices to app;
//! grant usage on sequence invoices_id_seq to app;
//! ```

use std::fmt;
use std::ops::{Deref, DerefMut};

use sqlx::{Connection as _, PgConnection, PgPool, Postgres, Transaction};

use crate::model::tenant::{TenantId, TenantRequired};

/// The PostgreSQL setting that holds the tenant inside a
/// [`TenantTransaction`]; policies read it with
/// `current_setting('app.current_tenant', true)`.
pub const TENANT_SETTING: &str = "app.current_tenant";

/// The statement that binds the tenant, transaction-locally.
const BIND_TENANT: &str = "select set_config('app.current_tenant', $1, true)";

/// Begins a transaction on a connection from `pool`, bound to the current
/// scope's tenant.
///
/// # Errors
///
/// [`Error::TenantRequired`] when no tenant is in scope, before any
/// connection is taken or query sent; [`Error::Database`] when beginning the
/// transaction or binding the tenant fails.
pub async fn begin(pool: &PgPool) -> Result<TenantTransaction<'static>, Error> {
    let tenant = crate::scope::store::tenant()?;
    let tx = pool.begin().await?;
    TenantTransaction::bind(tx, tenant).await
}

/// Begins a transaction on `conn`, bound to the current scope's tenant.
///
/// # Errors
///
/// [`Error::TenantRequired`] when no tenant is in scope, before any query;
/// [`Error::InTransaction`] when `conn` is already inside a transaction (the
/// tenant would then stay bound until that outer transaction ends);
/// [`Error::Database`] when beginning or binding fails.
pub async fn begin_on(conn: &mut PgConnection) -> Result<TenantTransaction<'_>, Error> {
    let tenant = crate::scope::store::tenant()?;
    if conn.is_in_transaction() {
        return Err(Error::InTransaction);
    }
    let tx = conn.begin().await?;
    TenantTransaction::bind(tx, tenant).await
}

/// A PostgreSQL transaction bound to one tenant; made by [`begin`] and
/// [`begin_on`].
///
/// It dereferences to the [`PgConnection`], so it is used like a
/// `sqlx::Transaction`: `query.execute(&mut *tx)`. It must be
/// [`commit`](TenantTransaction::commit)ted to keep its writes; dropping it
/// rolls back. A function that takes `&mut TenantTransaction` cannot be handed
/// a connection without a tenant.
pub struct TenantTransaction<'c> {
    tx: Transaction<'c, Postgres>,
    tenant: TenantId,
}

impl<'c> TenantTransaction<'c> {
    async fn bind(mut tx: Transaction<'c, Postgres>, tenant: TenantId) -> Result<Self, Error> {
        sqlx::query(BIND_TENANT)
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
        Ok(TenantTransaction { tx, tenant })
    }

    /// The tenant this transaction is bound to (the one in scope when it began).
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Commits the transaction; the tenant binding ends with it.
    ///
    /// # Errors
    ///
    /// When PostgreSQL refuses the commit.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Rolls the transaction back; the tenant binding ends with it.
    ///
    /// # Errors
    ///
    /// When the connection fails.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl Deref for TenantTransaction<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for TenantTransaction<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

impl fmt::Debug for TenantTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantTransaction")
            .field("tenant", &self.tenant.as_str())
            .finish_non_exhaustive()
    }
}

/// Why a [`TenantTransaction`] could not begin.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No tenant was in scope; nothing was sent to the database.
    TenantRequired(TenantRequired),
    /// [`begin_on`] was given a connection already inside a transaction.
    InTransaction,
    /// The database refused or failed.
    Database(sqlx::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TenantRequired(_) => {
                f.write_str("no tenant in scope, so no tenant transaction and no query")
            }
            Error::InTransaction => f.write_str(
                "a tenant transaction must begin on a connection outside any transaction",
            ),
            Error::Database(_) => f.write_str("the database failed a tenant transaction"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::TenantRequired(e) => Some(e),
            Error::InTransaction => None,
            Error::Database(e) => Some(e),
        }
    }
}

impl From<TenantRequired> for Error {
    fn from(e: TenantRequired) -> Self {
        Error::TenantRequired(e)
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}
