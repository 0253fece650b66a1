-- Each item of each computed list (shown or shadow), with whether the user consumed it afterwards: the first positive event of the
-- same user on the same item within var('attribution_window_hours') after the list was served.
-- window_closed says whether the warehouse holds events up to the end of that window, i.e.
-- whether "not consumed" is final or may still change.

with

impressions as (

    select * from {{ ref('impressions') }}

),

events as (

    select * from {{ ref('stg_events') }}

),

positive_events as (

    select user_id, item_id, event_ts
    from events
    where {{ is_positive_event('events') }}

),

newest_event as (

    select max(event_ts) as newest_event_ts from events

),

consumption as (

    select
        impressions.request_id,
        impressions.served_by,
        impressions.position,
        min(positive_events.event_ts) as consumed_at

    from impressions
    inner join positive_events
        on positive_events.user_id = impressions.user_id
        and positive_events.item_id = impressions.item_id
        and positive_events.event_ts > impressions.served_at
        and positive_events.event_ts
            <= {{ dbt.dateadd('hour', var('attribution_window_hours'), 'impressions.served_at') }}
    group by impressions.request_id, impressions.served_by, impressions.position

),

final as (

    select
        impressions.*,
        consumption.consumed_at is not null as consumed,
        consumption.consumed_at,
        {{ dbt.datediff('impressions.served_at', 'consumption.consumed_at', 'second') }} / 3600.0 as hours_to_consume,
        {{ dbt.dateadd('hour', var('attribution_window_hours'), 'impressions.served_at') }}
            <= newest_event.newest_event_ts as window_closed

    from impressions
    left join consumption
        on consumption.request_id = impressions.request_id
        and consumption.served_by = impressions.served_by
        and consumption.position = impressions.position
    cross join newest_event

)

select * from final
