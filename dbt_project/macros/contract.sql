{#-
    Macros that read the dataset contract (var('contract'), built by
    recs_platform.data.contract.DatasetContract.dbt_vars), so staging and marts select the
    columns a dataset declares instead of assuming MovieLens' columns.
-#}

{#- The declared columns of one catalogue ('users' or 'items'), the title column left out. -#}
{% macro contract_columns(kind) -%}
    {%- set contract = var('contract') -%}
    {%- set columns = contract[{'users': 'user_columns', 'items': 'item_columns'}[kind]] -%}
    {{ return(columns | rejectattr('name', 'equalto', contract['title_column']) | list) }}
{%- endmacro %}

{#- Staging select list of a catalogue: every declared column as stored, multi-valued ones also as
    a VARCHAR[] `<name>_list` without empty entries. Each line ends with a comma. -#}
{% macro contract_staging_columns(kind) -%}
    {%- for column in contract_columns(kind) %}
        {%- if column.kind == 'multi' %}
        coalesce({{ column.name }}, '') as {{ column.name }},
        {{ split_nonempty('coalesce(' ~ column.name ~ ", '')", column.separator) }}::varchar[] as {{ column.name }}_list,
        {%- else %}
        {{ column.name }},
        {%- endif %}
    {%- endfor %}
{%- endmacro %}

{#- `<name>_bucket` band labels of a numeric column with contract buckets, e.g. edges [18, 25]
    give '<18', '18-24', '25+'. -#}
{% macro contract_bucket(column_sql, edges) -%}
    case
        when {{ column_sql }} is null then null
        {%- for edge in edges %}
        when {{ column_sql }} < {{ edge }} then
            {%- if loop.first %} '<{{ edge }}'
            {%- else %} '{{ edges[loop.index0 - 1] }}-{{ edge - 1 }}'
            {%- endif %}
        {%- endfor %}
        else '{{ edges[-1] }}+'
    end
{%- endmacro %}
