// The sample flow a web or mobile app runs, written against the types openapi-typescript
// generates from ../../openapi.json; scripts/check-clients type-checks it under tsc --strict,
// so a document a generator reads badly (a state typed as a plain string, an undeclared
// header, an untyped error) fails the build. The README's TypeScript example is this flow.
import createClient from "openapi-fetch";
import type { components, paths, webhooks } from "./generated/schema";

type Schemas = components["schemas"];
type Problem = Schemas["Problem"];

class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.code}: ${problem.detail}`);
  }
}

export async function login(baseUrl: string, email: string, password: string) {
  const client = createClient<paths>({ baseUrl });
  const { data, error } = await client.POST("/api/v1/auth/token", {
    body: { username: email, password },
    // The token endpoint takes an OAuth2 password form, not JSON.
    bodySerializer: (body) => new URLSearchParams({ username: body.username, password: body.password }),
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  if (error) throw new ApiError(error);
  return createClient<paths>({
    baseUrl,
    headers: { Authorization: `Bearer ${data.access_token}` },
  });
}

export async function sampleFlow(baseUrl: string): Promise<Schemas["OpportunityRead"]> {
  const api = await login(baseUrl, "east.rep1@example.com", "demo-password");

  const customers = await api.GET("/api/v1/customers", {
    params: { query: { sort: "-created_at", limit: 10 } },
  });
  if (customers.error) throw new ApiError(customers.error);
  const customer: Schemas["CustomerRead"] | undefined = customers.data.items[0];
  if (customer === undefined) throw new Error("no customer in your scope");

  const created = await api.POST("/api/v1/opportunities", {
    params: { header: { "Idempotency-Key": crypto.randomUUID() } },
    body: { customer_id: customer.id, title: "Two dyeing lines", amount: "12500.00" },
  });
  if (created.error) {
    // Problem codes are an enum: a typo here is a compile error.
    if (created.error.code === "conflict") console.warn(created.error.reason);
    throw new ApiError(created.error);
  }
  const opportunity = created.data;

  const moves = await api.GET("/api/v1/opportunities/{opportunity_id}/transitions", {
    params: { path: { opportunity_id: opportunity.id } },
  });
  if (moves.error) throw new ApiError(moves.error);
  const move = moves.data.find((option) => option.blocked_by === null && option.needs.length === 0);
  if (move === undefined) return opportunity;

  // The offered move goes back as it is: `to` is the opportunity's own Stage enum.
  const moved = await api.POST("/api/v1/opportunities/{opportunity_id}/transitions", {
    params: {
      path: { opportunity_id: opportunity.id },
      header: { "If-Match": `"${opportunity.version}"` },
    },
    body: { to: move.to, note: "Qualified on the first call" },
  });
  if (moved.error) {
    if (moved.error.code === "invalid_transition") console.warn(moved.error.allowed);
    throw new ApiError(moved.error);
  }
  const stage: Schemas["Stage"] = moved.data.stage;
  console.log(`${moved.data.title} is now ${stage}`);
  return moved.data;
}

// A receiver of webhook deliveries types their bodies from the document's `webhooks`.
type Delivery<E extends keyof webhooks> = NonNullable<
  webhooks[E]["post"]["requestBody"]
>["content"]["application/json"];

export function onStageChanged(body: Delivery<"opportunity.stage_changed">): string {
  const from: Schemas["Stage"] = body.data.from;
  return `${body.data.title}: ${from} → ${body.data.stage} at ${body.timestamp}`;
}

// The feed's `type` is the same enum of event names.
export async function latestEventTypes(api: Awaited<ReturnType<typeof login>>) {
  const feed = await api.GET("/api/v1/events", { params: { query: { limit: 20 } } });
  if (feed.error) throw new ApiError(feed.error);
  const types: Schemas["EventType"][] = feed.data.items.map((event) => event.type);
  return types;
}
