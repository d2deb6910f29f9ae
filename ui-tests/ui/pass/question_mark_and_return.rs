// `?` converts into the declared error type and `return` leaves the
// function, both from inside the scope.

use context_runtime::{with_context, Carrier, CarrierError, Context, TenantRequired};

#[derive(Debug, PartialEq)]
enum Error {
    Parse,
    NoTenant,
    Carrier,
}

impl From<std::num::ParseIntError> for Error {
    fn from(_: std::num::ParseIntError) -> Self {
        Error::Parse
    }
}

impl From<TenantRequired> for Error {
    fn from(_: TenantRequired) -> Self {
        Error::NoTenant
    }
}

impl From<CarrierError> for Error {
    fn from(_: CarrierError) -> Self {
        Error::Carrier
    }
}

#[with_context(from = "ctx")]
async fn parse(ctx: Carrier, text: &str) -> Result<u32, Error> {
    if text.is_empty() {
        return Ok(0);
    }
    let tenant = context_runtime::tenant()?;
    let n: u32 = text.parse()?;
    tokio::task::yield_now().await;
    Ok(n + tenant.as_str().len() as u32)
}

#[with_context(from = "ctx")]
async fn unit(ctx: Context, stop: bool) {
    if stop {
        return;
    }
    assert!(context_runtime::current().is_some());
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let t = || Carrier::from_json(r#"{"tenantId":"abc"}"#).unwrap();
    assert_eq!(parse(t(), "4").await, Ok(7));
    assert_eq!(parse(t(), "").await, Ok(0));
    assert_eq!(parse(t(), "x").await, Err(Error::Parse));
    assert_eq!(
        parse(Carrier::from_json("{}").unwrap(), "4").await,
        Err(Error::NoTenant)
    );
    unit(Context::root(), true).await;
    unit(Context::root(), false).await;
}
