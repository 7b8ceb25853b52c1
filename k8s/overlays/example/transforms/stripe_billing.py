"""Billing events from Stripe: others filtered out, Connect events renamed, revenue fanned out."""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms.stripe import stripe

KEPT = ("stripe/invoice.", "stripe/customer.", "stripe/payment_intent.")


@transform("stripe-billing")
def stripe_billing(webhook: Webhook) -> list[Event] | None:
    event = stripe(webhook)  # start from the built-in mapping
    if not event.name.startswith(KEPT):
        return None  # filter: acknowledged with 200, nothing is forwarded
    if event.data.get("account"):  # Connect: an event from a connected account
        renamed = "stripe/connect." + event.name.removeprefix("stripe/")
        event = event.model_copy(update={"name": renamed})  # the gateway validates it again
    events = [event]
    if event.name == "stripe/invoice.paid":
        invoice = event.data["data"]["object"]
        events.append(
            Event(
                name="stripe/revenue.recorded",
                id=f"{event.id}-revenue",  # a dedup id of its own, never the one above
                ts=event.ts,
                data={
                    "customer": invoice["customer"],
                    "amount": invoice["amount_paid"],
                    "currency": invoice["currency"],
                },
            )
        )
    return events  # fan-out: every event in the list is forwarded
