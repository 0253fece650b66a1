{#
    Helpers shared by interaction_splits and split_cutoffs so both read the protocol and the
    temporal cutoffs from one place.
#}

{% macro split_protocol() %}
    {%- set protocol = var('split_protocol') | string | trim %}
    {%- if protocol not in ['random_per_user', 'temporal'] %}
        {{ exceptions.raise_compiler_error(
            "var('split_protocol') must be 'random_per_user' or 'temporal', got '" ~ protocol ~ "'"
        ) }}
    {%- endif %}
    {{- return(protocol) }}
{% endmacro %}


{#- Select-list expressions computing the global temporal cutoffs over a timestamp column. -#}
{% macro temporal_split_cutoffs(timestamp_column) %}
    {{ timestamp_quantile(timestamp_column, var('temporal_valid_quantile')) }} as valid_cutoff,
    {{ timestamp_quantile(timestamp_column, var('temporal_test_quantile')) }} as test_cutoff
{% endmacro %}
