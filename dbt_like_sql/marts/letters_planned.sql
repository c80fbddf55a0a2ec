-- description: One row per letter to send as of the date, keyed by a deterministic letter key (trigger:customer:instance), with its template, priority (1 first: the push ranks a customer's letters by it when the contact policy caps a day), due day, the local day it should arrive on (deliver_on, birthdays and anniversaries) and personalisation JSON (name, bonus, products and recommendations with price, tracked link and image, the UTM tags of its links); only to addresses intermediate.letter_recipients allows (email is the normalised address), at most one letter per address, letter type and due day (the products of merged letters in one letter); control_group says whether the letter is held out (global control group or this letter type's holdout).
-- owners: team:data
-- unique_key: letter_key
-- count_by: template_name, control_group
with due as (
    select * from marts.trigger_events
),
recipients as (
    select lifecycle.customer_id, may_receive.address as email, lifecycle.first_name, lifecycle.stage
    from marts.customer_lifecycle as lifecycle
    join intermediate.letter_recipients as may_receive using (customer_id)
    where may_receive.may_receive_letters
),
candidate_letters as (
    select due.*, recipients.email, recipients.first_name, recipients.stage
    from due
    join recipients using (customer_id)
),
-- One inbox, one letter of a type a day: letters of the same type due the same day to the same
-- address (several customers at one address, several replenishment items) become the letter that
-- comes first, carrying every product of the others.
inbox_letters as (
    select
        arg_min(letter_key, (priority, letter_key)) as letter_key,
        -- in (priority, letter_key) order: list_sort compares the structs field by field, and a letter_key is unique
        -- (cheaper than an ordered aggregate, which sorts each group on its own)
        flatten(list_transform(list_sort(list({'priority': priority, 'letter_key': letter_key, 'products': products})),
                               letter -> letter.products)) as all_products
    from candidate_letters
    group by email, template_name, due_on
),
letters as (
    select
        candidate_letters.* replace (
            list_filter(
                inbox_letters.all_products, (product, position) -> list_position(inbox_letters.all_products, product) = position
            ) as products
        )
    from candidate_letters
    join inbox_letters using (letter_key)
),
-- Links carry UTM tags (letter type, letter key) so the shop's analytics can attribute a visit to
-- its letter; the template appends the same tags to its button to the shop.
tracking as (
    select
        letter_key,
        'utm_source=sendgrid&utm_medium=email&utm_campaign=' || url_encode(template_name)
            || '&utm_content=' || url_encode(letter_key) as utm
    from letters
),
letter_products as (
    select letter_key, unnest(products) as product_id, generate_subscripts(products, 1) as position
    from letters
),
named_products as (
    select
        letter_products.letter_key,
        list_transform(
            list_sort(list({
                'position': letter_products.position,  -- unique in a letter: sorted by it
                'product': {
                    'product_id': letter_products.product_id,
                    'name': products.name,
                    'price': printf('%.2f', products.price),
                    'url': products.url || (case when contains(products.url, '?') then '&' else '?' end) || tracking.utm,
                    'image_url': products.image_url
                }
            })),
            entry -> entry.product
        ) as products
    from letter_products
    join staging.stg_products as products using (product_id)
    join tracking using (letter_key)
    group by letter_products.letter_key
),
-- A letter's recommendations depend only on its list of products: they are ranked once per distinct list (6,070 lists
-- for 50,832 letters at 1M customers; ranked per letter, the candidates were 4.9M rows and two thirds of the model's
-- time), then given to the letters with that list. A list is handled by its number, cheaper to group by than the list.
product_lists as (
    select products, row_number() over () as list_number
    from (select distinct products from letters)
),
list_products as (
    select list_number, unnest(products) as product_id from product_lists
),
affinity_candidates as (
    select
        list_products.list_number,
        affinity.related_product_id as product_id,
        1 as source_order,
        -sum(affinity.confidence) as score
    from list_products
    join marts.product_affinity as affinity using (product_id)
    group by all
),
popular_candidates as (
    select product_lists.list_number, popular.product_id, 2 as source_order, popular.popularity_rank::double as score
    from product_lists
    cross join (
        select product_id, popularity_rank
        from marts.product_popularity
        where popularity_rank <= $recommendations_count + 10
    ) as popular
),
ranked_candidates as (
    select
        candidates.list_number,
        candidates.product_id,
        row_number() over (
            partition by candidates.list_number
            order by candidates.source_order, candidates.score, candidates.product_id
        ) as recommendation_rank
    from (
        select * from affinity_candidates
        union all
        select * from popular_candidates
    ) as candidates
    -- never recommend what the letter is already about
    anti join list_products using (list_number, product_id)
    qualify row_number() over (
        partition by candidates.list_number, candidates.product_id
        order by candidates.source_order, candidates.score
    ) = 1
),
-- Each list's recommendations as catalogue entries, in rank order; a letter adds only its own UTM tags to the links
-- (grouped per letter, the same lists cost 2.8 s of 7 at 1M customers).
list_recommendations as (
    select
        ranked.list_number,
        list(
            {
                'product_id': ranked.product_id,
                'name': catalogue.name,
                'price': printf('%.2f', catalogue.price),
                'link': catalogue.url || (case when contains(catalogue.url, '?') then '&' else '?' end),
                'image_url': catalogue.image_url
            }
            order by ranked.recommendation_rank
        ) as recommendations
    from (
        select
            list_number,
            product_id,
            row_number() over (partition by list_number order by recommendation_rank) as position,
            recommendation_rank
        from ranked_candidates
        qualify position <= $recommendations_count
    ) as ranked
    join staging.stg_products as catalogue on catalogue.product_id = ranked.product_id
    group by ranked.list_number
),
recommendations as (
    select
        letters.letter_key,
        list_transform(
            list_recommendations.recommendations,
            recommended -> {
                'product_id': recommended.product_id,
                'name': recommended.name,
                'price': recommended.price,
                'url': recommended.link || tracking.utm,
                'image_url': recommended.image_url
            }
        ) as recommendations
    from letters
    join product_lists on letters.products is not distinct from product_lists.products
    join list_recommendations using (list_number)
    join tracking on tracking.letter_key = letters.letter_key
)
select
    letters.letter_key,
    letters.customer_id,
    letters.email,
    letters.first_name,
    letters.trigger,
    letters.template_name,
    letters.priority::integer as priority,
    letters.fired_at,
    $as_of::date as as_of,
    json_merge_patch(
        to_json({
            'first_name': letters.first_name,
            'bonus_amount': letters.bonus_amount,
            'bonus_expires_on': strftime(letters.bonus_expires_on, '%Y-%m-%d'),
            'products': coalesce(named_products.products, []),
            'recommendations': coalesce(recommendations.recommendations, []),
            'stage': letters.stage,
            'trigger': letters.trigger,
            'utm': tracking.utm
        }),
        letters.details::json
    )::varchar as personalisation,
    letters.due_on,
    -- the local day a birthday or anniversary letter arrives on; the push schedules it there (send_at)
    letters.deliver_on,
    letters.instance,
    letters.stage,
    -- Control groups: the push records these letters as held_out and never sends them; the lift report
    -- compares their customers' buying with recipients'. Letter-type holdout: the same hash as
    -- intermediate.control_groups with the letter type in it, so each type holds out its own customers.
    case
        when control.in_global_control_group then 'global'
        when ('0x' || left(md5(letters.customer_id || ':' || letters.template_name || ':' || $control_group_salt), 8))::ubigint
             % 10000 < round(coalesce(
                 try_cast(($letter_holdout_shares::json ->> letters.template_name) as double), $letter_holdout_share
             ) * 10000) then 'letter_type'
    end as control_group
from letters
left join named_products using (letter_key)
left join recommendations using (letter_key)
join tracking using (letter_key)
left join intermediate.control_groups as control on control.customer_id = letters.customer_id
