-- split_cutoffs reports the sizes interaction_splits actually holds, and for the temporal
-- protocol every train row is before valid_cutoff and every test row at or after test_cutoff.

with

cutoffs as (

    select * from {{ ref('split_cutoffs') }}

),

splits as (

    select * from {{ ref('interaction_splits') }}

),

actual as (

    select
        count(*) filter (where split = 'train') as n_train,
        count(*) filter (where split = 'valid') as n_valid,
        count(*) filter (where split = 'test') as n_test,
        max("timestamp") filter (where split = 'train') as max_train_ts,
        min("timestamp") filter (where split = 'test') as min_test_ts

    from splits

)

select cutoffs.*, actual.*
from cutoffs
cross join actual
where cutoffs.n_train <> actual.n_train
   or cutoffs.n_valid <> actual.n_valid
   or cutoffs.n_test <> actual.n_test
   or (cutoffs.split_protocol = 'temporal' and actual.max_train_ts >= cutoffs.valid_cutoff)
   or (cutoffs.split_protocol = 'temporal' and actual.min_test_ts < cutoffs.test_cutoff)
