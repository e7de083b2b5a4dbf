"""Market data in: the TopstepX (ProjectX Gateway) client and the feed processes.

- `client`, `auth`, `budget`, `models`, `errors`: the REST client (httpx) with its token,
  rate budget and tolerant models;
- `hub`: SignalR hub agents (pysignalr) that stay connected and subscribed;
- `contracts`: symbol -> contract resolution;
- `subscriptions`, `bars`, `market`: the `subscriptions`, `feed-bars` and `feed-market`
  processes; `finals` is the pure core that keeps the final 1m bar stream exact.

docs/feeds.md explains how the data is kept right.
"""
