"""Only billing events from Stripe, plus a revenue event for every paid invoice."""

from gateway import Event, Webhook, transform
from transforms.stripe import stripe


@transform("stripe-billing")
def stripe_billing(webhook: Webhook) -> list[Event] | None:
    event = stripe(webhook)  # start from the built-in mapping
    if not event.name.startswith(("stripe/invoice.", "stripe/customer.")):
        return None  # filter: everything else is dropped, and answered 200
    events = [event]
    if event.name == "stripe/invoice.paid":
        invoice = event.data["data"]["object"]
        events.append(
            Event(
                name="stripe/revenue.recorded",
                id=f"{event.id}-revenue",  # a dedup id of its own
                ts=event.ts,
                data={
                    "customer": invoice["customer"],
                    "amount": invoice["amount_paid"],
                    "currency": invoice["currency"],
                },
            )
        )
    return events  # fan-out: both events are forwarded
