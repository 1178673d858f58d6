"""One catalogue of every reason code, in Japanese and English.

A rule or an operation answers with a :class:`~lifecycle.model.Decision`: allowed or
not, a stable machine-readable ``code`` and the two messages the patron or the staff
see. Every code and both of its messages are here, once: the pure policies
(:mod:`lifecycle.policies`), the operations on the database (``circulation/``:
holds, partners, logins, My bookshelf, the cart) and, later, the JSON API all answer
through :func:`decide`. A code means one thing wherever it appears; where two places
word the same answer differently (the cart and My bookshelf both say ``added``),
:data:`WORDING` holds the place's wording and :func:`decide_for` picks it.

Other layers add their own codes with :func:`register` (a code already in the
catalogue is an error: codes are unique).

Also here: the cancellation reasons the service records in ``requests.cancel_reason``
(Japanese, shown as written in the patron's list) with their English labels for
mails (:data:`CANCEL_REASONS`), and the lockout message that names the time
(:func:`locked_until`).
"""
from __future__ import annotations

from datetime import datetime

from .model import Decision

REASONS: dict[str, tuple[str, str]] = {
    "ok": ("受け付けました。", "Accepted."),
    # placing (policies.placing)
    "category_not_allowed": ("この利用者区分では予約できません。",
                             "Your card category cannot place holds."),
    "not_eligible_for_reservation": ("お住まい・通勤・通学先の市区町村の方は予約できません。",
                                     "Holds are only for residents, workers or students of the listed municipalities."),
    "not_eligible_for_request": ("リクエストは市内在住・在勤・在学の方のみ申し込めます。",
                                 "Purchase/ILL requests are only for residents, workers or students of the city."),
    "requests_not_offered": ("所蔵していない資料は予約できません。",
                             "Items the library does not own cannot be requested."),
    "channel_not_allowed": ("この方法では受け付けていません。",
                            "This cannot be placed through this channel."),
    "request_not_at_pickup_branch": ("リクエストは受け取りたい図書館・室でお申し込みください。",
                                     "Hand in a request at the branch where you will collect it."),
    "material_av": ("視聴覚資料（DVD・CD）は予約できません。", "Audio-visual items cannot be reserved."),
    "material_ebook": ("電子書籍は予約できません。", "E-books cannot be reserved."),
    "newest_issue": ("雑誌の最新号は予約できません。", "The newest issue of a magazine cannot be reserved."),
    "not_circulating": ("貸出禁止の資料は予約できません。", "Non-circulating items cannot be reserved."),
    "not_owned": ("所蔵していない資料は予約できません。", "Items the library does not own cannot be reserved."),
    "request_material_refused": ("視聴覚資料・電子書籍のリクエストはできません。",
                                 "Audio-visual items and e-books cannot be requested."),
    "magazine_not_released": ("雑誌の予約は貸出解禁日以降に受け付けます。",
                              "Magazines can be reserved from their lending release date."),
    "not_yet_published": ("新刊のリクエストは発売されてからの受付となります。",
                          "New titles can be requested once published."),
    "branch_material_channel": ("この館・室のこの種類の資料は、この方法では予約できません。",
                                "This branch does not take holds on this material through this channel."),
    "branch_material_on_loan_only": ("この館・室のこの種類の資料は、貸出中の場合のみ予約できます。",
                                     "This branch takes holds on this material only while it is on loan."),
    "limit_branch_material": ("この館・室のこの種類の資料の予約件数の上限に達しています。",
                              "You have reached this branch's hold limit for this material."),
    "limit_material": ("この種類の予約件数の上限に達しています。",
                       "You have reached the hold limit for this material type."),
    "duplicate_request": ("この資料はすでに予約・リクエストしています。",
                          "You already have a reservation or request for this title."),
    "pickup_change_not_allowed": ("受取場所を変更する場合は、予約を取消して最初からやり直してください。",
                                  "To change the pickup branch, cancel the reservation and place it again."),
    "limit_total": ("予約・リクエストの件数の上限に達しています。",
                    "You have reached the limit of holds and requests together."),
    "blocked_overdue": ("返却期限を2週間以上過ぎた資料があるため予約できません。",
                        "A loan is too long overdue; new holds are blocked."),
    "pickup_not_service_point": ("その受取場所は選べません。",
                                 "That pickup location is not a service point of this library."),
    "contact_method_not_offered": ("その連絡方法は選べません。", "That contact method is not offered."),
    "email_missing": ("メールアドレスが登録されていません。", "No e-mail address is registered."),
    "phone_missing": ("電話番号が登録されていません。", "No phone number is registered."),
    "fax_missing": ("FAX番号が登録されていません。", "No fax number is registered."),
    # loans (policies.loans)
    "loan_limit": ("貸出点数の上限に達しています。", "You have reached the loan limit."),
    "item_not_circulating": ("この資料は貸出できません。", "This item cannot be borrowed."),
    "no_loan_rule": ("この利用者区分では貸出できません。", "This card category cannot borrow."),
    # a check-out's copy and card (policies.loans.check_out)
    "card_not_valid_here": ("この利用券はこの図書館では使えません。", "This card cannot be used at this library."),
    "item_other_system": ("この資料は他の図書館（市）の資料のため、ここでは貸出できません。",
                          "This item belongs to another library system and cannot be lent here."),
    "item_on_loan": ("この資料は貸出中です。", "This item is already on loan."),
    "held_for_another_patron": ("この資料は他の方の予約のために確保されています。",
                                "This copy is held for another patron's reservation."),
    "item_in_transit": ("この資料は搬送中です。到着処理の後に貸出してください。",
                        "This item is in transit: check it in at its destination first."),
    "item_not_available": ("この資料は貸出できる状態ではありません（紛失・除籍）。",
                           "This item is lost or withdrawn."),
    "partner_lend_at_counter": ("連携貸出の資料は申し込んだ図書館の窓口でのみ貸出します。",
                                "University partner items are lent only at the city library counter where they were "
                                "requested."),
    "not_on_loan": ("この資料は貸出中ではありません。", "This item is not on loan."),
    "return_other_system": ("この資料は借りた図書館（市）に返却してください。",
                            "Return this item to a library of the system that lent it."),
    # renewals
    "someone_waiting": ("次に予約の方がいるため延長できません。", "Someone is waiting for this item."),
    "renewal_limit": ("延長できる回数を超えています。", "This loan cannot be renewed again."),
    "renewal_by_lender": ("他館からお借りした資料です。延長は貸出館に依頼します。",
                          "This item was borrowed from another library: its renewal is asked of that library."),
    "renewal_pending": ("貸出館に延長を依頼しました。結果はお知らせします。",
                        "The lending library has been asked to renew it; you will be told the answer."),
    "recalled": ("貸出館から返却の請求があったため延長できません。",
                 "The lending library has recalled it: it cannot be renewed."),
    # inter-library loan over ISO 18626 (circulation/ill/)
    "ill_not_configured": ("相互貸借（ISO 18626）は設定されていません。",
                           "Inter-library loan (ISO 18626) is not configured here."),
    "unknown_title": ("この資料は総合目録にありません。", "This title is not in the union catalog."),
    "ill_not_offered": ("この図書館では相互貸借の依頼を受け付けていません。",
                        "This library system does not take inter-library loan requests."),
    "owned_locally": ("この資料は所蔵があります。予約してください。",
                      "The library system owns a copy of this title: place a reservation instead."),
    "no_lender": ("この資料を貸し出せる提携館がありません。",
                  "No partner library that lends this title can be asked."),
    "ill_web_not_offered": ("連携貸出（相互貸借）のウェブからの申込は受け付けていません。"
                            "図書館の窓口でお申し込みください。",
                            "Partner-library requests are not taken on the web here: ask at a library counter."),
    "other_library": ("他の図書館の依頼です。", "This request belongs to another library system."),
    "item_other_title": ("この資料は依頼された資料ではありません。",
                         "This copy is not of the title that was asked for."),
    "not_a_partner_loan": ("他館からお借りした資料の貸出ではありません。",
                           "This is not a loan of another library's copy."),
    "web_renewal_not_repeatable_at_counter": ("Webで延長した資料は窓口で延長できません。",
                                              "A loan renewed on the web cannot be renewed again at the counter."),
    "renewal_too_early": ("返却期限日の1週間前から延長できます。",
                          "Too early: renewals open shortly before the due date."),
    "renewal_too_late": ("返却期限日を過ぎているため延長できません。",
                         "Too long overdue to renew."),
    "renewal_not_extending": ("延長しても返却期限日が延びません。", "Renewing would not extend the due date."),
    # cancellation
    "secured_staff_only": ("すでに資料を確保しているため、Webからは取消できません。図書館へお申し出ください。",
                           "The library has already secured the copy: ask the library to cancel."),
    "secured_pickup_branch_only": ("確保済みの資料の取消は受取館・室にお知らせください。",
                                   "A secured hold is cancelled by the pickup branch."),
    "already_closed": ("この予約はすでに終了しています。", "This request is already closed."),
    "ill_cancel_requested": ("提供館に取消を依頼しました。", "The cancellation was sent to the lending library."),
    # returns
    "partner_return_to_lending_counter": ("連携貸出の資料は借りた窓口に返却してください。",
                                          "University partner items go back to the counter they were lent from."),
    "not_at_drop_point": ("録音図書や相互貸借の資料は返却ポストに返却できません。直接図書館にご返却ください。",
                          "Audio books and inter-library loans cannot go to drop points: return them at a library."),
    # university partnership (連携貸出, circulation/partners.py)
    "partner_unknown": ("この大学図書館の資料は連携貸出の対象ではありません。",
                        "This library has no lending partnership with the university that owns this item."),
    "partner_collection_not_eligible": ("この資料は連携貸出の対象資料ではありません"
                                        "（対象の所蔵館・配架場所の図書資料に限ります）。",
                                        "This item is not in the collections the university lends through the "
                                        "partnership."),
    "partner_material_excluded": ("視聴覚資料・大型図書・教科書・参考図書・貴重書・学位論文などは"
                                  "連携貸出の対象外です。",
                                  "This kind of material (audio-visual, oversized, textbook, reference, rare book, "
                                  "thesis...) is excluded from the partnership."),
    "partner_item_not_lendable": ("この資料は貸出できない資料のため、連携貸出の対象外です。",
                                  "This item cannot be borrowed, so it cannot be requested from the university."),
    "partner_item_unavailable": ("申込時に貸出中や予約のある資料は連携貸出の対象外です。",
                                 "Items on loan or already requested at the time of the request are excluded."),
    # login
    "password_length": ("パスワードの桁数が正しくありません。", "The password has the wrong length."),
    "password_charset": ("パスワードに使えない文字が含まれています。",
                         "The password contains characters that are not allowed."),
    "locked_out": ("パスワードを続けて間違えたため、しばらくログインできません。",
                   "Too many wrong passwords: the account is locked for a while."),
    # self-checkout (自動貸出機)
    "kiosk_not_here": ("この館には自動貸出機がありません。カウンターで貸出します。",
                       "This branch has no self-checkout machine: borrow at the counter."),
    "kiosk_material_excluded": ("この資料は自動貸出機では貸出できません。カウンターへお持ちください。",
                                "This item cannot be borrowed at the self-checkout machine: take it to the counter."),
    # home delivery (有料図書宅配, circulation/delivery.py)
    "delivery_not_offered": ("この図書館では宅配サービスを行っていません。",
                             "This library does not offer home delivery."),
    "delivery_staff_only": ("宅配サービスの利用申請・登録取消は図書館職員が受け付けます。",
                            "Home delivery registrations are handled by library staff."),
    "delivery_category_not_allowed": ("この利用券では宅配サービスを利用できません。",
                                      "This card category cannot use home delivery."),
    "delivery_not_eligible_area": ("宅配サービスは市内にお住まいか、通勤・通学されている方が利用できます。"
                                   "広域利用の方は利用できません。",
                                   "Home delivery is only for residents, workers or students of the city, not "
                                   "wide-area card holders."),
    "delivery_guardian_consent_required": ("未就学児、小・中学生の方は保護者の同意が必要です。",
                                           "Pre-school and school children need a guardian's consent."),
    "delivery_already_registered": ("すでに宅配サービスの利用登録があります。",
                                    "Already registered for home delivery."),
    "delivery_not_registered": ("宅配サービスの利用登録がありません。",
                                "Not registered for home delivery."),
    "delivery_material_not_offered": ("この資料は宅配サービスではお送りできません。",
                                      "This material is not sent by home delivery."),
    "delivery_request_required": ("宅配での貸出は、宅配の予約で用意した資料に限ります。",
                                  "Only a copy readied for a home-delivery request can be shipped."),
    "delivery_not_ready": ("この資料は発送待ちの宅配資料ではありません。",
                           "This copy is not a home-delivery hold waiting to be shipped."),
    # proxy loans (代理での貸出)
    "proxy_loans_not_offered": ("この図書館では代理の方への貸出は行っていません。",
                                "This library does not lend to a proxy with someone else's card."),
    "proxy_not_authorised": ("ご本人が了承した代理の方として登録されていないため、貸出できません。",
                             "The card holder has not consented to loans to this proxy."),
    "proxy_name_missing": ("代理の方のお名前が必要です。", "The proxy's name is required."),
    "proxy_staff_only": ("代理の方の登録・取消は図書館職員が受け付けます。",
                         "Proxy consents are recorded by library staff."),
    "proxy_already_consented": ("この代理の方はすでに登録されています。",
                                "This proxy is already on record for this card."),
    "proxy_consent_not_found": ("この代理の方の登録はありません。",
                                "There is no consent on record for this proxy."),
    # cards: validity (団体貸出), the mobile library's own card (ともはと号), school grade cards
    "card_expired": ("利用券の有効期限が切れています。継続の確認を受けてください。",
                     "This card has expired: the library must confirm it before it is extended."),
    "card_not_for_mobile": ("図書館で作成した利用券では「ともはと号」の利用はできません。",
                            "A library card cannot be used at the mobile library: a mobile library card is made on the "
                            "spot."),
    "mobile_card_only": ("「ともはと号」の利用券は「ともはと号」でのみ利用できます。",
                         "A mobile library card can only be used at the mobile library."),
    "school_stop_limit": ("学校内での貸出冊数の上限に達しています。",
                          "You have reached the loan limit of the mobile library at a school stop."),
    "mobile_return_only": ("「ともはと号」で借りた本は「ともはと号」か中央図書館に返却してください。",
                           "Items borrowed from the mobile library go back to the mobile library or the central "
                           "library."),
    "mobile_loan_not_renewable": ("「ともはと号」の本は延長できません。返却できない場合はお問い合わせください。",
                                  "Mobile library loans cannot be renewed: please contact the library."),
    "card_not_extendable": ("この利用券には有効期限がありません。",
                            "This card has no validity period to extend."),
    "card_extension_too_early": ("継続の確認は有効期限が近づいてから受け付けます。",
                                 "A card is extended only shortly before it expires."),
    "school_grade_card_exists": ("この学校・学年の利用券はすでにあります（利用券は学年で1枚）。",
                                 "This school grade already has a card (one card per grade)."),
    "group_not_in_area": ("団体貸出は市内で活動する団体・施設が対象です。",
                          "Group cards are for groups and institutions based in the city."),
    "card_number_taken": ("この利用券番号はすでに使われています。", "This card number is already in use."),
    # 読書会用図書 (reading-group sets)
    "reading_set_whole_only": ("読書会用図書はセットでのみ貸出します。",
                               "Reading-group copies are lent only as a whole set."),
    "reading_set_category": ("読書会用図書は団体貸出の利用券でお借りください。",
                             "Reading-group sets are lent on group and school cards only."),
    "reading_set_lend_at": ("読書会用図書は中央図書館で貸出します。",
                            "Reading-group sets are lent at the central library."),
    "reading_set_incomplete": ("セットの資料がそろっていないため、貸出できません。",
                               "Some copies of this set are not available, so the set cannot be lent."),
    # ---- holds on the database (circulation/holds.py)
    "not_suspendable": ("順番待ちの予約だけを保留にできます。",
                        "Only a request waiting in the queue can be suspended."),
    "not_suspended": ("この予約は保留中ではありません。", "This request is not suspended."),
    "not_changeable": ("資料の確保後は受取場所・連絡方法を変更できません。",
                       "Once the copy is secured, the pickup branch and contact method cannot change."),
    "set_mismatch": ("並べ替える予約がセット予約の内容と一致しません。",
                     "The requests given are not exactly the live requests of this set."),
    "empty_titles": ("資料が選ばれていません。", "No titles were given."),
    "duplicate_titles": ("同じ資料が重複しています。", "The same title is given twice."),
    "not_in_review": ("このリクエストは検討中ではありません。", "This request is not awaiting review."),
    "staff_only": ("図書館職員のみが行えます。", "Only library staff can do this."),
    "cancel_after_shipping": ("発送済みの資料の取消は、到着後に受取館で行います。",
                              "The copy has been shipped: it is cancelled when it arrives at the pickup branch."),
    # ---- university partnership on the database (circulation/partners.py)
    "not_a_partner_item": ("この資料は連携貸出の大学図書館の資料ではありません。",
                           "This item does not belong to a partner university library."),
    "not_a_partner_request": ("この申込は連携貸出の申込ではありません。",
                              "This is not a university partnership request."),
    "wrong_state": ("この申込は今この操作ができる状態ではありません。",
                    "This request is not in a state that allows this step."),
    "copy_not_at_partner": ("この資料は大学図書館に戻っていません（貸出中・搬送中）。",
                            "The copy is not back at the university (on loan or in transit)."),
    "nothing_to_receive": ("この資料は大学図書館から発送されていません。",
                           "This copy has not been shipped by the university."),
    "nothing_to_complete": ("この資料は大学図書館へ返送中ではありません。",
                            "This copy is not on its way back to the university."),
    "return_not_shipped": ("返却された資料の返送がまだ記録されていません。先に返送を記録してください。",
                           "The return shipment has not been recorded yet: record it first."),
    "cancel_on_arrival": ("資料は発送済みのため、到着後に取り消して大学図書館へ返送します。",
                          "The copy is already on its way: it will be cancelled and sent back when it arrives."),
    # ---- accounts: logins, passwords, staff (circulation/auth.py)
    "logged_in": ("ログインしました。", "Logged in."),
    "login_failed": ("利用者番号またはパスワードが正しくありません。",
                     "The card number or the password is wrong."),
    "staff_login_failed": ("ユーザー名またはパスワードが正しくありません。",
                           "The username or the password is wrong."),
    "password_registered": ("パスワードを登録しました。", "The password has been registered."),
    "password_change_failed": ("利用者番号または旧パスワードが正しくありません。",
                               "The card number or the old password is wrong."),
    "registration_failed": ("入力された内容では登録できません。利用者カードをお持ちのうえ図書館へお申し出ください。",
                            "These details do not match our records. Please ask at a library with your card."),
    "unknown_card": ("その利用者番号は登録されていません。", "No patron has this card number."),
    "not_logged_in": ("ログインしてください。", "Please log in."),
    "role_required": ("この操作を行う権限がありません。", "You do not have the role this needs."),
    "staff_exists": ("そのユーザー名はすでに使われています。", "That username is taken."),
    "unknown_staff": ("そのユーザー名は登録されていません。", "No staff member has this username."),
    "username_invalid": ("ユーザー名は半角英数字と . _ - で64文字以内です。",
                         "A username is up to 64 letters, digits, '.', '_' or '-'."),
    "unknown_library": ("その図書館は登録されていません。", "Unknown library."),
    "unknown_branch": ("その館はこの図書館のものではありません。", "That branch does not belong to this library."),
    "unknown_role": ("その権限はありません。", "Unknown role."),
    "no_roles": ("権限を1つ以上指定してください。", "Give at least one role."),
    "staff_password_weak": ("職員のパスワードは8文字以上にしてください。",
                            "A staff password needs at least 8 characters."),
    "password_too_long": ("パスワードが長すぎます。", "The password is too long."),
    # ---- My bookshelf and settings (circulation/bookshelf.py)
    "added": ("My本棚に追加しました。", "Added to My bookshelf."),
    "already_on_shelf": ("すでにMy本棚にあります。", "Already on this shelf."),
    "removed": ("My本棚から削除しました。", "Removed from My bookshelf."),
    "unknown_shelf": ("その本棚はありません。", "There is no such shelf."),
    "entry_not_found": ("その資料はMy本棚にありません。", "That entry is not on your bookshelf."),
    "title_missing": ("資料が指定されていません。", "No title was given."),
    "history_started": ("貸出履歴の保存を開始しました。これから借りた資料が保存されます。",
                        "Borrowing history is on: loans from now on are saved."),
    "history_stopped": ("貸出履歴の保存を停止しました。今までに保存された履歴は残ります。",
                        "Borrowing history is off; what was saved is kept until you delete it."),
    "history_deleted": ("貸出履歴を削除しました。", "Your borrowing history has been deleted."),
    "goal_set": ("読書目標を設定しました。", "Your reading goal is set."),
    "goal_cleared": ("読書目標を解除しました。", "Your reading goal is cleared."),
    "goal_invalid": ("読書目標は1以上の数で入力してください。", "A reading goal is a number of at least 1."),
    "settings_updated": ("利用者情報を変更しました。", "Your settings have been updated."),
    "email_invalid": ("メールアドレスの形式が正しくありません。", "That is not a valid e-mail address."),
    "email_domain_warning": ("利用者情報を変更しました。ただし、このアドレスには図書館からのメールが届きません。"
                             "別のアドレスでの登録をお願いします。",
                             "Saved, but the library's mail does not reach this address: please register another one."),
    "email_needed_for_contact": ("連絡方法がE-Mailのため、メールアドレスは削除できません。",
                                 "Your contact method is e-mail, so the address cannot be removed."),
    "locale_invalid": ("表示言語は日本語または英語から選んでください。", "The language must be Japanese or English."),
    # ---- the reservation cart (circulation/cart.py)
    "already_in_cart": ("すでに予約カートに入っています。", "This title is already in the reservation cart."),
    "cart_full": ("予約カートがいっぱいです。予約するか、不要な資料をカートから削除してください。",
                  "The reservation cart is full: place or remove some titles first."),
    "title_id_too_long": ("資料の指定が長すぎます。", "The title id is too long."),
    "not_in_cart": ("その資料は予約カートに入っていません。", "That title is not in the reservation cart."),
    "cart_empty": ("予約カートに資料がありません。", "The reservation cart is empty."),
    "pickup_required": ("受取場所を選んでください。", "Choose a pickup branch."),
    "already_requested": ("この資料はすでに予約しています。", "You already have a hold on this title."),
    "checked_out": ("予約を受け付けました。", "Your holds have been placed."),
}

# Codes that answer "yes" (Decision.allowed): everything else is a refusal.
ALLOWED: set[str] = {
    "ok", "ill_cancel_requested", "cancel_on_arrival",
    "logged_in", "password_registered",
    "added", "already_on_shelf", "removed", "history_started", "history_stopped", "history_deleted",
    "goal_set", "goal_cleared", "settings_updated", "email_domain_warning",
    "already_in_cart", "checked_out", "renewal_pending",
}

# The same answer worded for one place: {place: {code: (Japanese, English)}}.
WORDING: dict[str, dict[str, tuple[str, str]]] = {
    "cart": {
        "added": ("予約カートに入れました。", "Added to the reservation cart."),
        "removed": ("予約カートから削除しました。", "Removed from the reservation cart."),
    },
}


def decide(code: str = "ok", /, **details) -> Decision:
    """The Decision for ``code`` (allowed when it is one of :data:`ALLOWED`), with
    ``details`` (limits, dates, ids: what a client shows next to the message)."""
    return Decision.of(REASONS, code, ALLOWED, **details)


def decide_for(place: str, code: str, /, **details) -> Decision:
    """:func:`decide`, worded for ``place`` (:data:`WORDING`) where it has its own words."""
    words = WORDING.get(place, {})
    if code in words:
        return Decision.of(words, code, ALLOWED, **details)
    return decide(code, **details)


OK = decide()


def register(entries: dict[str, tuple[str, str]], *, allowed: set[str] | frozenset[str] = frozenset()) -> None:
    """Add another layer's codes (each with its Japanese and English message) to the
    catalogue; ``allowed``: those of them that answer yes. A code that is already in
    the catalogue raises ValueError, as does a message missing a language."""
    taken = sorted(set(entries) & set(REASONS))
    if taken:
        raise ValueError(f"reason codes already in the catalogue: {', '.join(taken)}")
    for code, pair in entries.items():
        if len(pair) != 2 or not all(isinstance(m, str) and m for m in pair):
            raise ValueError(f"reason {code!r} needs a Japanese and an English message")
    unknown = set(allowed) - set(entries)
    if unknown:
        raise ValueError(f"allowed codes not in the entries: {', '.join(sorted(unknown))}")
    REASONS.update(entries)
    ALLOWED.update(allowed)


def locked_until(until: datetime) -> Decision:
    """``locked_out`` (the code of ``policies.login_locked``) with the time the lock
    ends in both messages."""
    return Decision(False, "locked_out",
                    f"パスワードを続けて間違えたため、{until:%Y年%m月%d日 %H:%M}までログインできません。",
                    f"Too many wrong passwords: the account is locked until {until:%Y-%m-%d %H:%M}.",
                    {"until": until})


# --------------------------------------------------------------------------- recorded cancel reasons

# What the service writes into requests.cancel_reason (Japanese, as the patron's list
# shows it), and the English label the notices use. Staff free text and policy codes
# are recorded as given (notices label codes of REASONS with their message).
REASON_WEB_CANCEL = "WEBキャンセル"
REASON_STAFF_CANCEL = "窓口キャンセル"
REASON_SHELF_EXPIRED = "取置期限切れ"
REASON_GROUP_SATISFIED = "グループ予約の他の資料を確保"
REASON_PUBLICATION_LAPSED = "受付後1カ月を経過しても出版されないため取消"
REASON_CANCEL_ON_ARRIVAL = "発送後の取消（到着後に返送）"
REASON_UNFILLED = "大学図書館から提供できないとの回答"
REASON_REFUSED = "お断り"

# English labels of the recorded reasons, for the notices (the two partner reasons have
# none yet: an English mail shows them as recorded).
CANCEL_REASONS: dict[str, tuple[str, str]] = {
    REASON_WEB_CANCEL: (REASON_WEB_CANCEL, "cancelled on the web"),
    REASON_STAFF_CANCEL: (REASON_STAFF_CANCEL, "cancelled at the library counter"),
    REASON_SHELF_EXPIRED: (REASON_SHELF_EXPIRED, "not collected by the pickup deadline"),
    REASON_GROUP_SATISFIED: (REASON_GROUP_SATISFIED, "another item of your group reservation was secured"),
    REASON_PUBLICATION_LAPSED: (REASON_PUBLICATION_LAPSED,
                                "cancelled because the title was not published within a month"),
    REASON_REFUSED: (REASON_REFUSED, "the request could not be accepted"),
}
