// Methods: `&self`, `&mut self`, `self`, `self: Arc<Self>`, and `from` a field
// of `self`.

use std::sync::Arc;

use context_runtime::{with_context, Carrier, CarrierError, Context, TenantId};

struct Worker {
    ctx: Context,
    handled: u32,
}

impl Worker {
    #[with_context(from = "self.ctx")]
    async fn by_ref(&self) -> Option<String> {
        tokio::task::yield_now().await;
        context_runtime::tenant().ok().map(|t| t.to_string())
    }

    #[with_context(from = "carrier")]
    async fn by_mut(&mut self, carrier: Carrier) -> Result<u32, CarrierError> {
        self.handled += 1;
        assert_eq!(context_runtime::tenant().unwrap().as_str(), "t2");
        Ok(self.handled)
    }

    #[with_context(from = "self.ctx")]
    async fn by_value(self) -> u32 {
        assert!(context_runtime::current().unwrap().ptr_eq(&self.ctx));
        self.handled
    }

    #[with_context(from = "self.ctx")]
    async fn by_arc(self: Arc<Self>) -> Option<String> {
        context_runtime::tenant().ok().map(|t| t.to_string())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let ctx = Context::root().with_tenant(TenantId::new("t1").unwrap());
    let mut worker = Worker { ctx, handled: 0 };
    assert_eq!(worker.by_ref().await.as_deref(), Some("t1"));
    let carrier = Carrier::from_json(r#"{"tenantId":"t2"}"#).unwrap();
    assert_eq!(worker.by_mut(carrier).await.unwrap(), 1);
    let shared = Arc::new(Worker {
        ctx: worker.ctx.clone(),
        handled: 0,
    });
    assert_eq!(shared.by_arc().await.as_deref(), Some("t1"));
    assert_eq!(worker.by_value().await, 1);
}
