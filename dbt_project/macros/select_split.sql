{#- The rows of one split of interaction_splits; split_train/valid/test are this with a name. -#}
{% macro select_split(split) %}

with

interaction_splits as (

    select * from {{ ref('interaction_splits') }}

),

final as (

    select
        user_id,
        item_id,
        "timestamp"

    from interaction_splits
    where split = '{{ split }}'

)

select * from final

{% endmacro %}
