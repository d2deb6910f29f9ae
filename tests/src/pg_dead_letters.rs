//! Dead letters in a PostgreSQL table: a [`DeadLetterSink`] of the user's
//! own for apalis's PostgreSQL backend (the apalis tests and the apalis
//! worker processes share it).

use context_runtime::apalis::DeadLetterSink;
use context_runtime::jobs::DeadLetter;

/// The table the sink writes to, one row per dead letter.
pub const TABLE: &str = "ctx_apalis_dead_letters";

/// Dead letters in the PostgreSQL table [`TABLE`], keyed by queue.
///
/// ```no_run
/// # async fn demo(pool: apalis_postgres::PgPool) -> Result<(), sqlx_apalis::Error> {
/// let sink = context_tests::pg_dead_letters::PgDeadLetters::new(pool);
/// sink.create_table().await?;
/// let letters = sink.read("my-queue").await?;
/// # let _ = letters;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct PgDeadLetters {
    pool: apalis_postgres::PgPool,
}

impl PgDeadLetters {
    /// A sink writing through `pool`.
    pub fn new(pool: apalis_postgres::PgPool) -> PgDeadLetters {
        PgDeadLetters { pool }
    }

    /// Creates [`TABLE`] when it does not exist.
    ///
    /// # Errors
    ///
    /// When PostgreSQL refuses.
    pub async fn create_table(&self) -> Result<(), sqlx_apalis::Error> {
        sqlx_apalis::query(
            "CREATE TABLE IF NOT EXISTS ctx_apalis_dead_letters \
             (queue text NOT NULL, kind text NOT NULL, reason text NOT NULL, tenant text, \
             payload text NOT NULL)",
        )
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// The dead letters of `queue`, as `(kind, reason, tenant, payload)`,
    /// ordered by kind.
    ///
    /// # Errors
    ///
    /// When PostgreSQL refuses.
    pub async fn read(
        &self,
        queue: &str,
    ) -> Result<Vec<(String, String, Option<String>, String)>, sqlx_apalis::Error> {
        sqlx_apalis::query_as(
            "SELECT kind, reason, tenant, payload FROM ctx_apalis_dead_letters \
             WHERE queue = $1 ORDER BY kind",
        )
        .bind(queue)
        .fetch_all(&self.pool)
        .await
    }

    /// Deletes the dead letters of `queue`.
    ///
    /// # Errors
    ///
    /// When PostgreSQL refuses.
    pub async fn delete(&self, queue: &str) -> Result<(), sqlx_apalis::Error> {
        sqlx_apalis::query("DELETE FROM ctx_apalis_dead_letters WHERE queue = $1")
            .bind(queue)
            .execute(&self.pool)
            .await
            .map(drop)
    }
}

impl DeadLetterSink for PgDeadLetters {
    type Error = sqlx_apalis::Error;

    async fn record(&self, letter: &DeadLetter) -> Result<(), Self::Error> {
        sqlx_apalis::query(
            "INSERT INTO ctx_apalis_dead_letters (queue, kind, reason, tenant, payload) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&letter.queue)
        .bind(letter.kind.as_str())
        .bind(&letter.reason)
        .bind(letter.tenant.as_deref())
        .bind(&letter.payload)
        .execute(&self.pool)
        .await
        .map(drop)
    }
}
